"""Crashes and concurrency: SIGKILL during ingestion, readers during writes, a full or read-only database."""

import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import event, text
from sqlmodel import Session, func, select

from aggregator import Aggregator
from aggregator.config import load_config
from aggregator.models import Article, Story
from aggregator.pipeline import poll_once
from aggregator.store import open_database

pytestmark = pytest.mark.slow

WORDS = ("harbour council minister storm budget election rail strike bank rates vaccine court ruling bridge "
         "festival outage airline police river flood summit treaty market shares energy prices school union "
         "hospital museum transfer final league drought wildfire satellite launch port border talks").split()


def _big_feed(n: int, seed: int = 7) -> bytes:
    """An RSS feed of ``n`` distinct articles, with every fifth a lightly edited copy of the one before."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, tzinfo=UTC)
    items, previous = [], ""
    for i in range(n):
        if i % 5 == 4:
            body = previous.replace(" the ", " a ", 3) + " Reporting by the news desk."
        else:
            body = " ".join(rng.choice(WORDS) for _ in range(120)) + f" Item {i}."
        previous = body
        published = format_datetime(start + timedelta(minutes=i))
        items.append(f"<item><title>Report {i}: {escape(' '.join(body.split()[:6]))}</title>"
                     f"<link>https://news.example/{i}</link><guid>urn:item:{i}</guid><pubDate>{published}</pubDate>"
                     f"<description>{escape(body)}</description></item>")
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Big</title>"
            + "".join(items) + "</channel></rss>").encode()


def _config(tmp_path, site, n=400):
    site.put("/big.xml", _big_feed(n), "application/rss+xml")
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n  - name: Big\n"
                    f"    url: {site.url('/big.xml')}\n    full_text: false\n")
    return path


def _consistent(database: str) -> tuple[int, int]:
    """Check the invariants a crash must not break; returns (articles, distinct identities)."""
    engine = open_database(database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        with Session(engine) as session:
            total = session.exec(select(func.count()).select_from(Article)).one()
            identities = session.exec(
                select(func.count()).select_from(select(Article.source_key, Article.external_id).distinct().subquery())
            ).one()
            orphans = session.exec(
                select(func.count()).select_from(Article).outerjoin(Story, Story.id == Article.story_id)
                .where((Story.id == None) | (Story.merged_into != None))  # noqa: E711
            ).one()
            assert orphans == 0, "every article is in exactly one live story"
            for story in session.exec(select(Story).where(Story.merged_into == None)).all():  # noqa: E711
                members = session.exec(select(func.count()).select_from(Article)
                                       .where(Article.story_id == story.id)).one()
                assert members == story.article_count, f"story {story.id} counts {story.article_count}, has {members}"
        return total, identities
    finally:
        engine.dispose()


def _count(database: str) -> int:
    engine = open_database(database)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM article")).scalar()
    finally:
        engine.dispose()


def test_sigkill_during_ingestion_loses_and_duplicates_nothing(tmp_path, site):
    config = _config(tmp_path, site)
    database = f"sqlite:///{tmp_path}/crash.db"
    open_database(database).dispose()
    rng = random.Random(3)
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "--database", database, "run"]
    stored = [0]
    for _ in range(4):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random point once ingestion is under way: some articles into this run's batch.
        target = stored[-1] + rng.randint(3, 60)
        deadline = time.monotonic() + 60
        while _count(database) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.05))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        total, identities = _consistent(database)
        assert total == identities, "an article was stored twice"
        assert total >= stored[-1], "a committed article was lost"
        stored.append(total)
    assert 0 < stored[1] < 400, f"the first kill did not land mid-ingestion: {stored}"
    # A clean poll finishes the job: everything stored exactly once. (Articles are committed in batches, so the
    # daemon may have finished the feed before the last kill: the server then answers 304.)
    results = poll_once(open_database(database), load_config(config), force=True)
    assert results[0].status in ("ok", "not-modified")
    assert _consistent(database) == (400, 400)


def test_readers_never_see_database_is_locked(tmp_path, site):
    config = _config(tmp_path, site, n=300)
    database = f"sqlite:///{tmp_path}/busy.db"
    open_database(database).dispose()
    writer = subprocess.Popen([sys.executable, "-m", "aggregator", "--config", str(config), "--database", database,
                               "poll"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors, reads = [], 0
    agg = Aggregator(database=database)
    while writer.poll() is None:
        try:
            agg.stories(limit=20)
            agg.digest()
            reads += 1
        except Exception as exc:  # noqa: BLE001 - any error is the failure
            errors.append(exc)
    output = writer.communicate()[0]
    assert writer.returncode == 0, output
    assert "locked" not in output
    assert not errors, errors[:3]
    assert reads > 5


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_full_or_read_only_database_is_a_clear_error_and_retried(tmp_path, site, caplog, failure):
    config = load_config(_config(tmp_path, site, n=50))
    engine = open_database(f"sqlite:///{tmp_path}/db.db")
    broken = threading.Event()
    broken.set()

    @event.listens_for(engine, "connect")
    def _break(dbapi_connection, _record):
        if broken.is_set():
            pragma = "PRAGMA max_page_count=1" if failure == "full" else "PRAGMA query_only=ON"
            dbapi_connection.execute(pragma)

    engine.dispose()  # new connections get the failure
    results = poll_once(engine, config)
    assert results[0].status == "error"
    stored_while_broken = _count(str(engine.url))  # a full disk may still take what fits in free pages
    assert "database error" in results[0].error
    assert ("full" in results[0].error) if failure == "full" else ("readonly" in results[0].error)
    assert "will retry at the next poll" in caplog.text

    broken.clear()
    engine.dispose()
    results = poll_once(engine, config)
    assert results[0].status == "ok" and results[0].new_entries == 50 - stored_while_broken
    engine.dispose()
    assert _consistent(str(engine.url)) == (50, 50)
