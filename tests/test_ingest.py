"""The write side: ingest keeps the engine and the database in step, and a restart rebuilds the same index."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text, update
from sqlmodel import Session, select

from aggregator.ingest import Incoming, Ingestor, refresh_story, snapshot_path
from aggregator.models import Article, Story
from aggregator.store import open_database, session_scope

BODY = ("The regional council approved on Tuesday a plan to rebuild the harbour sea wall over the winter, after the "
        "October storm destroyed more than forty metres of it and flooded the fish market. Engineers said the new "
        "wall would be half a metre higher. The work will cost 2.4 million euros, paid from the emergency fund. ")
OTHER = ("The national football league moved twelve spring matches to midweek evenings to make room for the "
         "international break, a change the players' union said it had not been consulted about. ")


def _item(i: str, source: str, title: str, text: str, minutes: int) -> Incoming:
    when = datetime(2026, 11, 24, 8) + timedelta(minutes=minutes)
    return Incoming(source_key=source, external_id=i, source=source, title=title, text=text, published=when)


def _same_signature(a: Ingestor, b: Ingestor, article_id: int) -> bool:
    return (a.clusterer.index.signatures[article_id] == b.clusterer.index.signatures[article_id]).all()


def _ingest(ingestor, engine, item):
    with session_scope(engine) as session:
        return ingestor.ingest(session, item)


def test_restart_reuses_stored_signatures_and_keeps_deciding_the_same(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    first = Ingestor(engine)
    original = _ingest(first, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    assert _ingest(first, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0)) is None  # seen
    _ingest(first, engine, _item("2", "Sport", "League moves matches", OTHER * 3, 5))

    restarted = Ingestor(engine)
    assert restarted.reload() == 2
    assert set(restarted.clusterer.articles) == set(first.clusterer.articles)
    assert _same_signature(restarted, first, original.article_id)

    copy = _ingest(restarted, engine, _item("3", "Paper", "UPDATE 1-Harbour wall rebuilt",
                                            "CITY (Wire) - " + BODY * 2 + " Reporting by the desk.", 30))
    assert copy.decision.duplicate_of == original.article_id
    assert copy.decision.duplicate_signal == "near-duplicate"
    assert copy.story_id == original.story_id


def test_signatures_of_another_scheme_are_recomputed(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    first = Ingestor(engine)
    original = _ingest(first, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    with session_scope(engine) as session:
        session.exec(update(Article).values(minhash=b"\x00" * 512, minhash_scheme="old-scheme"))
    restarted = Ingestor(engine)
    restarted.reload()
    assert _same_signature(restarted, first, original.article_id)


def test_story_counts_and_representative(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    ingestor = Ingestor(engine, preferred_sources=["Paper"])
    a = _ingest(ingestor, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    _ingest(ingestor, engine, _item("2", "Paper", "Harbour wall rebuilt", BODY * 2 + " Extra.", 10))
    _ingest(ingestor, engine, _item("3", "Wire", "Harbour wall: update", BODY * 2 + " More.", 20))
    with Session(engine) as session:
        story = session.get(Story, a.story_id)
        assert (story.article_count, story.source_count) == (3, 2)
        rep = session.get(Article, story.representative_id)
        assert rep.source == "Paper"  # a preferred source stands for the story over the earlier wire original
        assert story.first_seen == datetime(2026, 11, 24, 8)
        assert story.last_updated == datetime(2026, 11, 24, 8, 20)
        assert len(session.exec(select(Story)).all()) == 1


def _engine_state(ingestor: Ingestor) -> tuple:
    engine = ingestor.clusterer
    vectors = {sid: {t: round(w, 4) for t, w in s.vector.items()} for sid, s in engine.stories.items()}
    postings = {term: list(stories) for term, stories in engine.postings.items()}
    counts = {sid: dict(engine._term_counts(s)) for sid, s in engine.stories.items()}
    return vectors, postings, counts, dict(engine.df), engine.documents, sorted(engine.index.signatures)


def test_a_restart_rebuilds_the_engine_that_ingesting_built(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    live = Ingestor(engine)
    _ingest(live, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    _ingest(live, engine, _item("2", "Sport", "League moves matches", OTHER * 3, 5))
    _ingest(live, engine, _item("3", "Paper", "Harbour wall rebuilt after storm", BODY + " Extra words.", 9))
    _ingest(live, engine, _item("4", "Radio", "Sea wall: council approves rebuild", "", 12))
    restarted = Ingestor(engine)
    assert restarted.reload() == 4
    assert _engine_state(restarted) == _engine_state(live)
    for sid, story in live.clusterer.stories.items():
        again = restarted.clusterer.stories[sid]
        assert (again.members, again.articles) == (story.members, story.articles)
        heaviest = [round(story.vector[t], 4) for t in story.top]  # equal weights may come in another order
        assert [round(again.vector[t], 4) for t in again.top] == heaviest
        assert abs(again.norm - story.norm) < 1e-4


def test_a_database_from_before_stored_terms_is_upgraded_and_reloaded_from_text(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    live = Ingestor(engine)
    _ingest(live, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    _ingest(live, engine, _item("2", "Radio", "Sea wall: council approves rebuild", "", 12))
    with engine.begin() as connection:  # the version 1 schema had no terms column
        connection.execute(text("ALTER TABLE article DROP COLUMN terms"))
        connection.execute(text("ALTER TABLE article DROP COLUMN term_weights"))
        connection.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()
    engine = open_database(f"sqlite:///{tmp_path}/i.db")
    with Session(engine) as session:
        assert [(a.terms, a.term_weights) for a in session.exec(select(Article)).all()] == [(None, None)] * 2
    restarted = Ingestor(engine)
    assert restarted.reload() == 2
    assert _engine_state(restarted) == _engine_state(live)


# ---- the write path: batches, statements, story rows kept in memory ---------------------------------------

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "googlenews-t.jsonl"


def _count_statements(engine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    return statements


def _batch(n: int, prefix: str = "") -> list[Incoming]:
    items = []
    for i in range(n):
        source = ("Wire", "Paper", "Radio", "Gazette")[i % 4]
        if i % 3 == 0:
            text = BODY * 2 + f" {source} staff contributed."  # copies of one wire story
        else:
            text = f"Item {prefix}{i} " + " ".join(OTHER.split()[i % 7 :]) + f" Report number {prefix}{i} of {n}."
        items.append(_item(f"{prefix}{i}", source, f"Report {prefix}{i}: harbour wall and league", text, i))
    return items


def test_a_batch_costs_at_most_two_statements_an_article(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/s.db")
    ingestor = Ingestor(engine)
    statements = _count_statements(engine)
    with session_scope(engine) as session:
        results = ingestor.ingest_batch(session, _batch(60))
    assert all(results)
    assert len(statements) <= 2 * len(results), statements[:20]
    inserts = [s for s in statements if s.startswith("INSERT INTO article")]
    assert len(inserts) == 60


def _story_rows(session) -> dict:
    return {s.id: (s.title, s.representative_id, s.first_seen, s.last_updated, s.article_count, s.source_count)
            for s in session.exec(select(Story).where(Story.merged_into == None)).all()}  # noqa: E711


def _assert_stories_match_a_recount(engine, preferred: tuple[str, ...] = ()) -> None:
    """Every live story's row is what refresh_story counts again from its articles."""
    with Session(engine) as session:
        stored = _story_rows(session)
        for story_id in stored:
            refresh_story(session, story_id, preferred)
        session.flush()
        assert _story_rows(session) == stored
        session.rollback()
        orphans = session.exec(select(Article.id).join(Story, Story.id == Article.story_id)
                               .where(Story.merged_into != None)).all()  # noqa: E711
        assert not orphans


def test_story_rows_kept_in_memory_match_a_recount_across_batches_and_restarts(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/r.db")
    first = Ingestor(engine, preferred_sources=["Radio"])
    with session_scope(engine) as session:
        first.ingest_batch(session, _batch(30, "a"))
    restarted = Ingestor(engine, preferred_sources=["Radio"])  # knows the stories only from the database
    restarted.reload()
    with session_scope(engine) as session:
        results = restarted.ingest_batch(session, _batch(30, "b") + _batch(3, "a"))
    assert results[-3:] == [None, None, None]  # stored by the first batch
    _assert_stories_match_a_recount(engine, ("radio",))


def test_an_entry_twice_in_a_batch_is_stored_once_and_a_url_seen_in_the_batch_is_a_copy(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/u.db")
    ingestor = Ingestor(engine)
    first = _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0)
    again = _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0)
    other_feed = _item("9", "Aggregated", "Sport in brief", OTHER, 3)
    first.canonical_url = other_feed.canonical_url = "https://wire.example/wall"
    with session_scope(engine) as session:
        a, b, c = ingestor.ingest_batch(session, [first, again, other_feed])
    assert b is None
    assert c.decision.duplicate_of == a.article_id and c.decision.duplicate_signal == "canonical-url"
    assert c.story_id == a.story_id
    _assert_stories_match_a_recount(engine)


@pytest.mark.skipif(not BENCH.exists(), reason="../shared/bench not present")
def test_merged_stories_keep_their_counts_when_written_from_memory(tmp_path):
    from aggregator.replay import read_rows, replay

    rows = read_rows(BENCH)[:1500]
    database = f"sqlite:///{tmp_path}/m.db"
    replay(rows, database=database)
    engine = open_database(database)
    with Session(engine) as session:
        merged = session.exec(select(Story.id).where(Story.merged_into != None)).all()  # noqa: E711
    assert merged  # the set bridges stories: merges were exercised
    _assert_stories_match_a_recount(engine)


# ---- the engine's snapshot ----------------------------------------------------------------------------------

def _filled(tmp_path, n: int = 30) -> tuple:
    engine = open_database(f"sqlite:///{tmp_path}/snap.db")
    live = Ingestor(engine)
    with session_scope(engine) as session:
        live.ingest_batch(session, _batch(n))
    return engine, live


def test_a_snapshot_restarts_the_engine_without_reading_the_articles(tmp_path):
    engine, live = _filled(tmp_path)
    assert live.save_snapshot()
    assert snapshot_path(engine).exists()
    statements = _count_statements(engine)
    restarted = Ingestor(engine)
    assert restarted.reload() == 30
    assert not [s for s in statements if "FROM article JOIN story" in s or "article.terms" in s]  # no rows read
    assert _engine_state(restarted) == _engine_state(live)
    # and it goes on deciding as the live engine does
    item = _item("new", "Gazette", "Report 0: harbour wall and league", BODY * 2 + " Gazette staff.", 40)
    with session_scope(engine) as session:
        again = restarted.ingest(session, item)
    assert again.decision.duplicate_signal == "near-duplicate"


def test_a_stale_or_damaged_snapshot_is_rebuilt_from_the_database(tmp_path, caplog):
    caplog.set_level("INFO", logger="aggregator.ingest")
    engine, live = _filled(tmp_path)
    assert live.save_snapshot()
    with session_scope(engine) as session:  # stored after the snapshot was taken
        live.ingest(session, _item("late", "Radio", "League moves matches", OTHER * 3, 50))
    restarted = Ingestor(engine)
    assert restarted.reload() == 31 and "stale" in caplog.text
    assert _engine_state(restarted) == _engine_state(live)

    snapshot_path(engine).write_bytes(b"not a snapshot")
    assert Ingestor(engine).reload() == 31 and "not read" in caplog.text


def test_no_snapshot_is_saved_when_another_process_stored_articles_the_engine_has_not_seen(tmp_path):
    engine, live = _filled(tmp_path)
    other = Ingestor(engine)
    other.reload(snapshot=False)
    with session_scope(engine) as session:
        other.ingest(session, _item("elsewhere", "Radio", "League moves matches", OTHER * 3, 50))
    assert not live.save_snapshot()
    assert other.save_snapshot()


def test_a_rebuilt_story_knows_the_names_its_articles_named(tmp_path):
    """The event evidence is stored with each article, so a restart without a snapshot (or a sequencer taking
    over on PostgreSQL) keeps two same-kind events apart as the live engine did."""
    engine = open_database(f"sqlite:///{tmp_path}/e.db")
    live = Ingestor(engine)
    stored = _ingest(live, engine, _item("1", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0))
    names = live.clusterer.stories[stored.story_id].evidence
    assert "october" in names or "tuesday" in names, names

    rebuilt = Ingestor(engine)
    assert rebuilt.reload(snapshot=False) == 1
    assert rebuilt.clusterer.stories[stored.story_id].evidence == names
    with engine.connect() as connection:  # an article stored before schema 5 has none: its story starts empty
        connection.execute(text("UPDATE article SET evidence = NULL"))
        connection.commit()
    older = Ingestor(engine)
    older.reload(snapshot=False)
    assert older.clusterer.stories[stored.story_id].evidence == set()
