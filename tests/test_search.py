"""Full-text search: the query language, ranking, grouping, snippets, hostile queries and the index's upkeep,
on SQLite and (when a server answers on 127.0.0.1:5432) PostgreSQL."""

import random
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from aggregator import search as search_module
from aggregator.api import Aggregator
from aggregator.cli import main
from aggregator.ingest import Incoming, Ingestor
from aggregator.models import Article, Meta, Story
from aggregator.query import list_stories
from aggregator.search import SearchError, matching_story_ids, parse_query, search_stories, segments
from aggregator.store import MIGRATIONS, make_engine, open_database, session_scope, upgrade

T0 = datetime(2026, 11, 24, 8)

ABUSE = ['"', "*", "NEAR(", "-", "a OR", ")", "x" * 10_000, "!?.,;:()[]{}", "", "   ", '"""', "* * *", "-storm",
         "storm OR", "NOT storm", "storm AND", "NEAR(storm norway)", "storm:", "title:storm", "^storm", "storm^2",
         "\x00", "'; DROP TABLE article; --", "\\", "'", "storm'", "&|!<->", "a:*", "(storm", '"storm', "storm)",
         "{title}: storm", "+storm", "col : x", "%", "_", "\u200b", "\ufeff", "🙂", "a" * 500, "\ue000", "\u0301",
         "x\u0301y*", "ǅ*", "²³*", "ﬁ ﬂ", "İstanbul", "ß*", "東*", "한국어*"]


# ---- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/search.db"
    return request.getfixturevalue("pg_database")()


@pytest.fixture
def engine(database_url):
    engine = open_database(database_url)
    yield engine
    engine.dispose()


def add_story(engine, *articles, minutes: int = 0) -> int:
    """A story holding ``articles`` ((title, text, source) each), stored directly; returns its id."""
    when = T0 + timedelta(minutes=minutes)
    with session_scope(engine) as session:
        story = Story(title=articles[0][0], first_seen=when, last_updated=when, article_count=len(articles),
                      source_count=len({a[2] for a in articles}))
        session.add(story)
        session.flush()
        for title, body, source in articles:
            article = Article(source_key=source.lower(), external_id=uuid.uuid4().hex, source=source, title=title,
                              text=body, url=f"https://{source.lower()}.example/{uuid.uuid4().hex[:6]}",
                              published_at=when, fetched_at=when, content_hash=uuid.uuid4().hex, story_id=story.id)
            session.add(article)
            session.flush()
            story.representative_id = story.representative_id or article.id
        return story.id


def ids(engine, q, **kw) -> list[int]:
    return [found.story.id for found in search_stories(engine, q, **kw)]


def marked(segs) -> list[str]:
    return [s.lower() for s, hit in segs if hit]


# ---- the query language (no database) -------------------------------------------------------------------------


def test_query_parsing():
    assert [t.words for t in parse_query("Storm  Norway")] == [("storm",), ("norway",)]
    phrase, = parse_query('"western Norway')  # an unbalanced quote is closed at the end
    assert phrase.words == ("western", "norway") and not phrase.prefix
    prefix, = parse_query("landsl*")
    assert prefix.words == ("landsl",) and prefix.prefix
    assert [t.words for t in parse_query("e-mail U.S. NEAR(a, b)")] == [("e", "mail"), ("u", "s"), ("near",),
                                                                        ("a",), ("b",)]
    assert [t.words for t in parse_query("storm storm STORM")] == [("storm",)]
    assert parse_query("東京*")[0].prefix  # two wide characters are enough for a prefix


@pytest.mark.parametrize("q, message", [
    ("", "empty search"), ("   ", "empty search"), ('"', "no words"), ("*", "no words"), ("-", "no words"),
    (")", "no words"), ("!?.,;:", "no words"), ("x" * 10_000, "too long"),
    (" ".join(f"w{i}" for i in range(21)), "too many words"), ("ne*", "at least 3 letters"),
    ('"storm no*"', "at least 3 letters"),
])
def test_unsearchable_queries_have_one_line_messages(q, message):
    with pytest.raises(SearchError, match=message) as caught:
        parse_query(q)
    assert "\n" not in str(caught.value)


def test_segments_split_at_markers():
    assert segments("a \x02storm\x03 in \x02Norway\x03") == [("a ", False), ("storm", True), (" in ", False),
                                                            ("Norway", True)]
    assert segments("\x02a\x03\x02b\x03") == [("ab", True)]
    assert segments("") == []


# ---- on both databases ----------------------------------------------------------------------------------------


def test_words_in_any_order_phrases_and_prefixes(engine):
    norway = add_story(engine, ("Storm Hedda brings floods to western Norway", "Landslides closed roads in Bergen.",
                                "Wire"))
    other = add_story(engine, ("Norway's west braces for rain", "A storm is expected near the western coast.",
                               "Paper"))
    portugal = add_story(engine, ("Storm Ilse floods towns in Portugal", "Rivers rose in Porto.", "Wire"))
    assert set(ids(engine, "Storm Norway")) == {norway, other}
    assert set(ids(engine, "norway STORM")) == {norway, other}
    assert ids(engine, '"western Norway"') == [norway]
    assert ids(engine, '"Norway western"') == []
    assert ids(engine, "landsl*") == [norway]
    assert set(ids(engine, "flood*")) == {norway, portugal}
    assert ids(engine, "landsl") == []  # without the star a word is whole
    assert ids(engine, '"storm hed*"') == [norway]  # a phrase whose last word is a prefix
    assert ids(engine, "porto") == [portugal]


def test_diacritics_are_folded(engine):
    cafe = add_story(engine, ("Café owners in São Paulo protest rent rises", "Zürich-based landlord named.", "Wire"))
    assert ids(engine, "cafe sao paulo") == [cafe]
    assert ids(engine, "CAFÉ") == [cafe]
    assert ids(engine, "zurich") == [cafe]
    assert ids(engine, "zür*") == [cafe]


def test_title_ranks_above_text_and_stories_group_their_hits(engine):
    in_text = add_story(engine, ("Council approves budget", "The debate touched on the harbour and its lighthouse "
                                 "before the vote.", "Wire"), minutes=30)
    in_title = add_story(engine, ("Lighthouse keeper retires after forty years", "He kept the light on the cape.",
                                  "Wire"), ("Last lighthouse keeper leaves his post", "A lighthouse without a "
                                            "keeper for the first time.", "Paper"))
    found = search_stories(engine, "lighthouse")
    assert [f.story.id for f in found] == [in_title, in_text]
    top = found[0]
    assert len(top.hits) == 2 and top.rank == top.hits[0].rank >= top.hits[1].rank
    assert top.story.source_count == 2 and top.story.article_count == 2
    assert {h.source for h in top.hits} == {"Wire", "Paper"}
    assert all(h.story_id == in_title and h.url.startswith("https://") and h.published == T0 for h in top.hits)
    assert found[0].rank > found[1].rank


def test_snippets_mark_the_matches(engine):
    add_story(engine, ("Storm Hedda reaches Norway", "Forecasters said the storm would weaken by Thursday, "
                       "after flooding roads along the fjords of western Norway and closing two ferry routes.",
                       "Wire"))
    hit = search_stories(engine, "norway storm")[0].hits[0]
    assert "".join(s for s, _ in hit.title_segments) == "Storm Hedda reaches Norway"
    assert marked(hit.title_segments) == ["storm", "norway"]
    assert set(marked(hit.snippet)) == {"storm", "norway"}
    assert "fjords" in "".join(s for s, _ in hit.snippet)
    prefix_hit = search_stories(engine, "ferr*")[0].hits[0]
    assert marked(prefix_hit.snippet) == ["ferry"] and marked(prefix_hit.title_segments) == []


def test_a_snippet_finds_a_match_deep_in_a_long_text(engine):
    filler = "The council met again on Tuesday and discussed the budget for the coming year at length. " * 120
    add_story(engine, ("Council meeting", filler + "Only at the end did anyone mention the lighthouse.", "Wire"))
    snippet = search_stories(engine, "lighthouse")[0].hits[0].snippet
    assert marked(snippet) == ["lighthouse"] and snippet[0][0].startswith("…")


def test_hostile_queries_are_search_errors_never_sql_errors(engine):
    add_story(engine, ("Storm near Norway", "A storm OR a gale, not both: AND that is that.", "Wire"))
    for q in ABUSE:
        try:
            search_stories(engine, q)
            matching_story_ids(engine, q)
        except SearchError as exc:
            assert str(exc) and "\n" not in str(exc)
    rng = random.Random(7)
    alphabet = list('"*()-:^+{}[],.;!?\'\\&|<>~%_ ') + ["NEAR", "AND", "OR", "NOT", "storm", "nor", "ä"]
    for _ in range(300):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        try:
            search_stories(engine, q)
        except SearchError:
            pass


def test_filters_and_pages(engine):
    old = add_story(engine, ("Harbour wall rebuilt", "Harbour works.", "Wire"), minutes=0)
    wide = add_story(engine, ("Harbour reopens", "Harbour news.", "Wire"), ("Harbour open again", "Harbour.", "Paper"),
                     minutes=60)
    assert ids(engine, "harbour", min_sources=2) == [wide]
    assert ids(engine, "harbour", since=T0 + timedelta(minutes=30)) == [wide]
    assert ids(engine, "harbour", sources=["paper"]) == [wide]
    assert ids(engine, "harbour", sources=[]) == []
    both = ids(engine, "harbour")
    assert set(both) == {old, wide}
    assert ids(engine, "harbour", limit=1) + ids(engine, "harbour", limit=1, offset=1) == both
    assert ids(engine, "harbour", offset=5) == []
    assert matching_story_ids(engine, "harbour") == both
    assert matching_story_ids(engine, "harbour", limit=1) == both[:1]


def test_newly_ingested_article_is_found(engine):
    ingestor = Ingestor(engine)
    with session_scope(engine) as session:
        stored = ingestor.ingest(session, Incoming(source_key="wire", external_id="1", source="Wire",
                                                   title="Volcano erupts near Reykjavik",
                                                   text="Lava reached the outskirts of Grindavík overnight.",
                                                   published=T0))
    found = search_stories(engine, "grindavik lava")
    assert [f.story.id for f in found] == [stored.story_id]
    assert found[0].hits[0].article_id == stored.article_id


def test_merged_story_articles_are_found_under_the_survivor(engine):
    survivor = add_story(engine, ("Bridge collapse in Genoa", "Rescuers searched the rubble.", "Wire"))
    merged = add_story(engine, ("Genoa viaduct falls", "The Morandi viaduct gave way in a storm.", "Paper"),
                       minutes=10)
    with session_scope(engine) as session:
        ingestor = Ingestor(engine)
        assert ingestor._merge(session, merged, [survivor]) == survivor
        ingestor._write_stories(session.connection())  # story counts are written once a batch
    found = search_stories(engine, "morandi")
    assert [f.story.id for f in found] == [survivor]
    assert found[0].hits[0].story_id == survivor and found[0].story.article_count == 2
    assert ids(engine, "genoa") == [survivor]


def test_upgrade_from_version_2_indexes_existing_articles(database_url):
    engine = make_engine(database_url)
    for version in (1, 2):
        MIGRATIONS[version](engine)
    with Session(engine) as session:
        session.merge(Meta(key="schema_version", value="2"))
        session.commit()
    story = add_story(engine, ("Glacier retreat measured in the Alps", "Surveyors at the Aletsch glacier.", "Wire"))
    assert upgrade(engine) == 2
    assert ids(engine, "aletsch") == [story]
    later = add_story(engine, ("Glacier lake drains", "Another Alpine lake emptied.", "Paper"), minutes=5)
    assert set(ids(engine, "glacier")) == {story, later}
    engine.dispose()


def test_list_stories_and_the_api_use_full_text_search(engine, database_url):
    norway = add_story(engine, ("Storm Hedda brings floods", "Western Norway braces for more rain.", "Wire"))
    assert [s.id for s in list_stories(engine, search="Storm Norway")] == [norway]  # title and text, any order
    with pytest.raises(SearchError):
        list_stories(engine, search='"')
    with Aggregator(database=database_url) as agg:
        assert [s.id for s in agg.stories(search="norway hedda")] == [norway]
        found = agg.search("floods", limit=5)
        assert found[0].story.id == norway and found[0].hits[0].title == "Storm Hedda brings floods"


# ---- SQLite specifics -----------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/search.db")
    yield engine
    engine.dispose()


def test_edits_and_deletes_reach_the_index(sqlite_engine):
    story = add_story(sqlite_engine, ("Harbour wall rebuilt", "Works begin.", "Wire"))
    with session_scope(sqlite_engine) as session:
        session.exec(text("UPDATE article SET title = 'Harbour wall delayed' WHERE story_id = :s").bindparams(s=story))
    assert ids(sqlite_engine, "rebuilt") == [] and ids(sqlite_engine, "delayed") == [story]
    with session_scope(sqlite_engine) as session:
        session.exec(text("DELETE FROM article WHERE story_id = :s").bindparams(s=story))
    assert ids(sqlite_engine, "harbour") == []


def test_pages_are_bounded(sqlite_engine, monkeypatch):
    for i in range(5):
        add_story(sqlite_engine, (f"Harbour story {i}", "Harbour.", "Wire"), minutes=i)
    monkeypatch.setattr(search_module, "MAX_PAGE", 2)
    assert len(search_stories(sqlite_engine, "harbour", limit=1000)) == 2
    monkeypatch.setattr(search_module, "CANDIDATES", 3)  # the newest three matches are ranked
    assert len(matching_story_ids(sqlite_engine, "harbour")) == 3


def test_cli_search_ranks_by_relevance_and_refuses_bad_queries(sqlite_engine, tmp_path, capsys):
    add_story(sqlite_engine, ("Council approves budget", "The harbour lighthouse was mentioned.", "Wire"),
              ("Budget passes", "No word of it.", "Paper"))
    add_story(sqlite_engine, ("Lighthouse keeper retires", "After forty years.", "Wire"))
    database = ["--database", f"sqlite:///{tmp_path}/search.db"]
    assert main([*database, "stories", "--search", "lighthouse"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Lighthouse keeper retires" in out[1] and "Council approves budget" in out[2]  # relevance, not sources
    assert main([*database, "stories", "--search", '")']) == 2
    err = capsys.readouterr().err
    assert err.startswith("aggregator: nothing to search for") and err.count("\n") == 1


def test_benchmark_script_runs_end_to_end(tmp_path):
    """The search benchmark at a tiny size (its figures are measured by hand, not by tests)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_search.py"
    out = subprocess.run([sys.executable, str(script), "--synthetic", "--articles", "1500", "--repeat", "1",
                          "--database", f"sqlite:///{tmp_path}/bench.db"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    assert "1,500 articles (synthetic) on sqlite" in out
    assert out.splitlines()[-1].startswith("all") and "40 searches" in out
