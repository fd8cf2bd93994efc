"""End to end: feeds served on 127.0.0.1 -> poll -> extract -> dedup/cluster -> store -> digest and queries."""

from collections import defaultdict

from sqlmodel import Session, func, select

from aggregator import Aggregator
from aggregator.config import load_config
from aggregator.demo import serve_round
from aggregator.models import Article, Feed, FetchLog, Story
from aggregator.pipeline import poll_once
from aggregator.query import build_digest


def _truth(corpus):
    """Gold story label by article title (titles are unique in the demo corpus)."""
    return {a.title: a.story for a in corpus.articles}


def _predicted(engine):
    with Session(engine) as session:
        return {a.title: a.story_id for a in session.exec(select(Article)).all()}


def test_three_outlets_two_rounds(tmp_path, demo_site, demo_config_file, three_outlets):
    config = load_config(demo_config_file)
    agg = Aggregator(database=f"sqlite:///{tmp_path}/e2e.db", config=config)

    first = poll_once(agg.engine, config)
    assert [r.status for r in first] == ["ok"] * 3
    round1 = sum(r.new_entries for r in first)
    assert round1 == sum(1 for a in three_outlets.articles if a.round == 1)

    serve_round(demo_site, three_outlets, 2)
    second = poll_once(agg.engine, config)
    assert sum(r.new_entries for r in second) == sum(1 for a in three_outlets.articles if a.round == 2)

    # Every article stored once, each in exactly one story.
    with Session(agg.engine) as session:
        assert session.exec(select(func.count()).select_from(Article)).one() == len(three_outlets.articles)
        assert session.exec(select(func.count()).select_from(Article).where(Article.story_id == None)).one() == 0  # noqa: E711
        texts = dict(session.exec(select(Article.title, Article.text_source)).all())
    # Full-text outlets had their pages fetched and extracted.
    assert set(texts.values()) == {"page"}

    # Story clusters: no two true stories share a cluster, and wire copies sit with their original.
    truth, predicted = _truth(three_outlets), _predicted(agg.engine)
    stories_of_cluster = defaultdict(set)
    for title, story_id in predicted.items():
        stories_of_cluster[story_id].add(truth[title])
    assert all(len(stories) == 1 for stories in stories_of_cluster.values()), stories_of_cluster
    budapest = {predicted[t] for t, s in truth.items() if s == "budapest-summit" and t in predicted}
    assert len(budapest) == 1

    # The digest: one entry per story, the Budapest summit first with the most sources and its copies folded.
    digest = build_digest(agg.engine, max(a.published for a in three_outlets.articles).date())
    assert len(digest.stories) == len(set(predicted.values()))
    top = digest.stories[0]
    assert "Budapest" in top.headline
    assert top.source_count == 3
    assert top.article_count == sum(1 for a in three_outlets.articles if a.story == "budapest-summit")
    assert any(source.copies for source in top.sources)
    assert top.lead.startswith("WASHINGTON")
    assert [s.source_count for s in digest.stories] == sorted((s.source_count for s in digest.stories), reverse=True)

    # The query API agrees with the digest.
    assert agg.stories(min_sources=3)[0].id == top.id
    assert agg.stories(search="budapest")[0].id == top.id
    detail = agg.story(top.id)
    assert {a.joined_by for a in detail.articles} >= {"new-story", "near-duplicate"}


def test_second_poll_is_conditional_and_changes_nothing(tmp_path, demo_site, demo_config_file, three_outlets):
    config = load_config(demo_config_file)
    agg = Aggregator(database=f"sqlite:///{tmp_path}/e2e.db", config=config)
    poll_once(agg.engine, config)
    with Session(agg.engine) as session:
        before = session.exec(select(func.count()).select_from(Article)).one()
        stories_before = session.exec(select(func.count()).select_from(Story)).one()

    results = poll_once(agg.engine, config)
    assert {r.status for r in results} == {"not-modified"}
    feed_requests = [headers for path, headers in demo_site.requests if path.endswith(("feed.xml", "feed.atom",
                                                                                        "feed.json"))]
    assert all("if-none-match" in {k.lower() for k in h} for h in feed_requests[-3:])
    with Session(agg.engine) as session:
        assert session.exec(select(func.count()).select_from(Article)).one() == before
        assert session.exec(select(func.count()).select_from(Story)).one() == stories_before
        assert session.exec(select(func.count()).select_from(FetchLog)).one() == 6


def test_broken_feed_does_not_stop_the_others(tmp_path, demo_site, demo_config_file):
    config = load_config(demo_config_file)
    demo_site.put("/continental-press/feed.xml", b"<html>this is not a feed</html>", "text/html")
    demo_site.remove("/valley-courier/feed.json")
    agg = Aggregator(database=f"sqlite:///{tmp_path}/e2e.db", config=config)
    results = {r.feed: r for r in poll_once(agg.engine, config)}
    assert results["Continental Press"].status == "error"
    assert "not a feed" in results["Continental Press"].error
    assert results["Tern Valley Courier"].status == "error"
    assert results["The Northern Chronicle"].status == "ok"
    assert results["The Northern Chronicle"].new_entries > 0
    health = {h.name: h for h in agg.feeds()}
    assert health["Tern Valley Courier"].consecutive_errors == 1
    assert health["Tern Valley Courier"].resting_until is not None
    assert health["The Northern Chronicle"].consecutive_errors == 0
    with Session(agg.engine) as session:
        feed = session.exec(select(Feed).where(Feed.name == "Continental Press")).one()
        assert feed.last_error and feed.last_status == 200


def test_page_failure_falls_back_to_feed_text(tmp_path, demo_site, demo_config_file, three_outlets):
    config = load_config(demo_config_file)
    for article in three_outlets.articles:
        if article.outlet == "northern-chronicle":
            from aggregator.demo import article_path

            demo_site.remove(article_path(article))
    agg = Aggregator(database=f"sqlite:///{tmp_path}/e2e.db", config=config)
    poll_once(agg.engine, config, ["The Northern Chronicle"])
    with Session(agg.engine) as session:
        sources = set(session.exec(select(Article.text_source)).all())
    assert sources == {"feed"}


def _one_feed_config(tmp_path, url):
    path = tmp_path / "one.yaml"
    path.write_text(f"settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n  - name: One\n    url: {url}\n"
                    "    full_text: false\n")
    return load_config(path)


def _feed_row(agg):
    with Session(agg.engine) as session:
        return session.exec(select(Feed).where(Feed.name == "One")).one()


def test_feed_policies_parse_errors_gone_and_retry_after(tmp_path, site):
    from aggregator.pipeline import resume_feed

    site.put("/broken.xml", b"<html>not a feed</html>", "text/html")
    config = _one_feed_config(tmp_path, site.url("/broken.xml"))
    agg = Aggregator(database=f"sqlite:///{tmp_path}/p.db", config=config)
    for _ in range(3):
        poll_once(agg.engine, config, force=True)
    assert "not a readable feed 3 times" in _feed_row(agg).disabled_reason
    assert poll_once(agg.engine, config)[0].status == "disabled"  # paused feeds are not fetched
    assert resume_feed(agg.engine, "One")
    assert _feed_row(agg).disabled_reason is None

    site.route("/broken.xml", lambda h: (h.send_response(410), h.end_headers()))
    poll_once(agg.engine, config, force=True)
    assert "gone" in _feed_row(agg).disabled_reason

    site.put("/broken.xml", b'<rss version="2.0"><channel><title>t</title><item><title>Back</title></item>'
             b"</channel></rss>", "application/rss+xml")
    assert poll_once(agg.engine, config, force=True)[0].status == "ok"  # a forced poll that reads it un-pauses it
    assert _feed_row(agg).disabled_reason is None
    assert poll_once(agg.engine, config)[0].status == "not-modified"
    site.route("/broken.xml", lambda h: (h.send_response(410), h.end_headers()))
    poll_once(agg.engine, config, force=True)
    assert "gone" in _feed_row(agg).disabled_reason

    resume_feed(agg.engine, "One")

    def busy(handler):
        handler.send_response(503)
        handler.send_header("Retry-After", "3600")
        handler.end_headers()

    site.route("/broken.xml", busy)
    poll_once(agg.engine, config)
    row = _feed_row(agg)
    rest = (row.retry_after - row.last_fetched_at).total_seconds()
    assert 3500 < rest < 3700
    assert poll_once(agg.engine, config)[0].status == "skipped"  # resting until Retry-After has passed


def test_permanent_redirect_moves_the_feed(tmp_path, site, three_outlets):
    from aggregator.demo import render_site

    body, content_type = render_site(three_outlets, site.base_url, 1)["/continental-press/feed.xml"]
    site.put("/new/feed.xml", body, content_type)

    def moved(handler):
        handler.send_response(301)
        handler.send_header("Location", site.url("/new/feed.xml"))
        handler.end_headers()

    site.route("/old/feed.xml", moved)
    config = _one_feed_config(tmp_path, site.url("/old/feed.xml"))
    agg = Aggregator(database=f"sqlite:///{tmp_path}/r.db", config=config)
    assert poll_once(agg.engine, config)[0].new_entries > 0
    assert _feed_row(agg).url == site.url("/new/feed.xml")
    poll_once(agg.engine, config)
    assert site.hits["/old/feed.xml"] == 1  # the second poll went straight to the new address


def test_a_permanent_move_from_https_to_http_is_not_stored():
    from aggregator.pipeline import address_after_move

    assert address_after_move("https://a.example/feed", "https://b.example/rss") == "https://b.example/rss"
    assert address_after_move("http://a.example/feed", "https://a.example/feed") == "https://a.example/feed"
    assert address_after_move("http://a.example/feed", "http://b.example/feed") == "http://b.example/feed"
    assert address_after_move("https://a.example/feed", "http://a.example/feed") == "https://a.example/feed"
    assert address_after_move("HTTPS://a.example/feed", "http://b.example/feed") == "HTTPS://a.example/feed"


def test_a_feed_listed_oldest_first_keeps_its_newest_entries_under_the_cap():
    from aggregator.parse import parse_feed
    from aggregator.pipeline import newest_entries

    def document(days: list[int | None]) -> bytes:
        items = "".join(
            f"<item><title>day {d}</title><guid>id-{n}</guid>"
            + (f"<pubDate>{d:02d} Nov 2026 08:00:00 GMT</pubDate>" if d else "") + "</item>"
            for n, d in enumerate(days)
        )
        return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()

    oldest_first = parse_feed(document(list(range(1, 11))), {}, "https://x.example/feed").entries
    assert [e.title for e in newest_entries(oldest_first, 3)] == ["day 10", "day 9", "day 8"]
    undated = parse_feed(document([None] * 5), {}, "https://x.example/feed").entries
    assert [e.external_id.rsplit("/", 1)[-1] for e in newest_entries(undated, 2)] == ["id-0", "id-1"]  # as listed
    assert newest_entries(oldest_first, 50) == oldest_first  # under the cap nothing moves


def test_a_database_error_mid_feed_reports_the_articles_it_stored(tmp_path, demo_site, demo_config_file,
                                                                  monkeypatch):
    """Each batch is its own transaction: an error in the second batch leaves the first stored, and says so."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from aggregator import pipeline
    from aggregator.ingest import Ingestor

    config = load_config(demo_config_file)
    agg = Aggregator(database=f"sqlite:///{tmp_path}/full.db", config=config)
    real_ingest, calls = Ingestor.ingest_batch, []

    def failing_ingest(self, session, items, each=None):
        calls.append(len(items))
        results = real_ingest(self, session, items, each)
        if len(calls) > 1:  # the second batch fails as it is written: nothing of it may stay
            raise OperationalError("INSERT INTO article", {}, sqlite3.OperationalError("database or disk is full"))
        return results

    monkeypatch.setattr(pipeline, "WRITE_BATCH", 2)
    monkeypatch.setattr(Ingestor, "ingest_batch", failing_ingest)
    (result,) = poll_once(agg.engine, config, ["Continental Press"])
    assert result.status == "error"
    assert "disk is full" in result.error and "after storing 2 new articles" in result.error
    with Session(agg.engine) as session:
        assert session.exec(select(func.count()).select_from(Article)).one() == 2
    assert result.new_entries == 2

    monkeypatch.setattr(Ingestor, "ingest_batch", real_ingest)  # the disk has room again: the next poll stores the rest
    (again,) = poll_once(agg.engine, config, ["Continental Press"])
    with Session(agg.engine) as session:
        stored = session.exec(select(func.count()).select_from(Article)).one()
    assert again.status == "ok" and again.new_entries == stored - 2 > 0


def test_force_polls_a_resting_feed_and_a_name_given_twice_is_polled_once(tmp_path, site, three_outlets):
    from aggregator.demo import render_site

    def busy(handler):
        handler.send_response(503)
        handler.send_header("Retry-After", "3600")
        handler.end_headers()

    site.route("/feed.xml", busy)
    config = _one_feed_config(tmp_path, site.url("/feed.xml"))
    agg = Aggregator(database=f"sqlite:///{tmp_path}/rest.db", config=config)
    assert poll_once(agg.engine, config)[0].status == "error"
    skipped = poll_once(agg.engine, config)[0]
    assert skipped.status == "skipped" and "resting until" in skipped.error and not skipped.polled
    body, content_type = render_site(three_outlets, site.base_url, 1)["/continental-press/feed.xml"]
    site.put("/feed.xml", body, content_type)
    assert site.hits["/feed.xml"] == 1  # the resting feed was not fetched
    results = poll_once(agg.engine, config, ["One", "One"], force=True)
    assert len(results) == 1
    assert results[0].status == "ok" and results[0].new_entries > 0 and results[0].polled
    assert site.hits["/feed.xml"] == 2


def test_a_pass_over_feeds_that_answer_304_records_them_together(tmp_path, site):
    """Each unchanged feed gets its fetch time, status and log row; the writes do not grow with the feeds."""
    from sqlalchemy import event

    def rss(n):
        return (f"<rss version='2.0'><channel><title>F{n}</title><item><title>Story {n}</title>"
                f"<link>https://f{n}.example/1</link><description>Text of feed {n}.</description></item>"
                "</channel></rss>")

    for n in range(12):
        site.put(f"/f{n}.xml", rss(n), "application/rss+xml")
    path = tmp_path / "many.yaml"
    path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n" + "".join(
        f"  - name: F{n}\n    url: {site.url(f'/f{n}.xml')}\n    full_text: false\n" for n in range(12)))
    config = load_config(path)
    agg = Aggregator(database=f"sqlite:///{tmp_path}/304.db", config=config)
    assert {r.status for r in poll_once(agg.engine, config)} == {"ok"}
    with Session(agg.engine) as session:
        first = {f.name: f.last_fetched_at for f in session.exec(select(Feed)).all()}
    writes = []

    @event.listens_for(agg.engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_):
        if not statement.startswith("SELECT"):
            writes.append(statement)

    results = poll_once(agg.engine, config)
    assert {r.status for r in results} == {"not-modified"}
    assert len(writes) <= 2, writes  # one UPDATE of the feeds, one INSERT of their log rows
    with Session(agg.engine) as session:
        feeds = session.exec(select(Feed)).all()
        assert all(f.last_fetched_at > first[f.name] and f.last_status == 304 and f.etag for f in feeds)
        logs = session.exec(select(FetchLog.status, func.count()).group_by(FetchLog.status)).all()
    assert dict(logs) == {200: 12, 304: 12}


def test_a_poll_holds_at_most_max_concurrency_pages_between_fetch_and_extraction(tmp_path, site, monkeypatch):
    """Pages flow to extraction a bounded few at a time, however many new entries the poll finds."""
    import threading
    import time

    from aggregator import pipeline

    entries = 40
    body = " ".join(f"word{i}" for i in range(80))
    items = "".join(f"<item><title>Story {n}</title><link>{site.url(f'/p{n}.html')}</link>"
                    f"<description>Short {n}.</description></item>" for n in range(entries))
    site.put("/feed.xml", f"<rss version='2.0'><channel><title>F</title>{items}</channel></rss>",
             "application/rss+xml")
    for n in range(entries):
        site.put(f"/p{n}.html", f"<html><body><article><p>Page {n} {body}</p></article></body></html>")
    path = tmp_path / "pages.yaml"
    path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\n  max_concurrency: 3\n  per_host_limit: 3\n"
                    f"feeds:\n  - name: F\n    url: {site.url('/feed.xml')}\n    full_text: true\n")
    config = load_config(path)
    extracted, held, lock = [0], [], threading.Lock()

    def slow_extract(html, url, timeout=None):
        time.sleep(0.01)
        with lock:
            fetched = sum(count for page, count in site.hits.items() if page.startswith("/p"))
            held.append(fetched - extracted[0])  # pages fetched and not yet extracted, this one included
            extracted[0] += 1
        return html

    monkeypatch.setattr(pipeline, "extract_from_html", slow_extract)
    monkeypatch.setattr(pipeline, "EXTRACT_WORKERS", 1)  # the bound is max_concurrency, or two pages a process
    agg = Aggregator(database=f"sqlite:///{tmp_path}/pages.db", config=config)
    (result,) = poll_once(agg.engine, config)
    assert result.status == "ok" and result.new_entries == entries
    assert len(held) == entries and max(held) <= 3, held
