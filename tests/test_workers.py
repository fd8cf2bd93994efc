"""Several processes on one PostgreSQL database: `aggregator run` (scheduler, sequencer, a worker) and
`aggregator worker`, against the single-process pipeline on the same input.

Needs a PostgreSQL server on 127.0.0.1 and procrastinate; skipped without them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from aggregator.localsite import LocalSite
from aggregator.models import utcnow

pytest.importorskip("procrastinate")
pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parent.parent
WAIT = 150  # seconds a cluster may take to store everything before a test gives up




# ---- a local site: feeds with originals and wire copies --------------------------------------------------


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
            for _ in range(n)]


def _page(title: str, body: str) -> str:
    paragraphs = "".join(f"<p>{escape(' '.join(chunk))}</p>" for chunk in _chunks(body.split(), 40))
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head><body><header><nav>Home News"
            f"</nav></header><article><h1>{escape(title)}</h1>{paragraphs}</article><footer>Contact us</footer>"
            "</body></html>")


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class ClusterSite:
    """``feeds`` feeds on ``site``: every story has an original in one feed and, for most, wire copies (lightly
    edited) in two others. Even-numbered feeds carry a summary and link to their pages (full text), odd ones
    carry the whole text. ``expected`` is how many articles the feeds hold."""

    def __init__(self, site: LocalSite, folder: Path, feeds: int = 50, stories: int = 60, seed: int = 11,
                 slow_pages: float = 0.0):
        rng = random.Random(seed)
        now = utcnow()
        items: dict[int, list[str]] = {index: [] for index in range(feeds)}
        self.expected = 0
        for story in range(stories):
            vocabulary = _words(rng, 90)  # each story its own words: stories never share a cluster by chance
            body = " ".join(rng.choice(vocabulary) for _ in range(160))
            title = " ".join(vocabulary[:6]).capitalize()
            homes = [story % feeds]
            if story % 4:
                homes += [(story * 7 + 1) % feeds, (story * 13 + 5) % feeds]
            for copy, feed in enumerate(dict.fromkeys(homes)):
                text_ = body if copy == 0 else body.replace(vocabulary[7], vocabulary[8], 2) + " Wire report."
                published = format_datetime((now - timedelta(minutes=story * 3 + copy)).replace(tzinfo=None),
                                            usegmt=False)
                path = f"/f{feed}/s{story}.html"
                site.put(path, _page(title, text_))
                if slow_pages:
                    site.route(path, _slow(site, _page(title, text_), slow_pages))
                description = " ".join(text_.split()[:30]) if feed % 2 == 0 else text_
                items[feed].append(f"<item><title>{escape(title)}</title><link>{site.url(path)}</link>"
                                   f"<guid>urn:f{feed}:s{story}</guid><pubDate>{published} +0000</pubDate>"
                                   f"<description>{escape(description)}</description></item>")
                self.expected += 1
        lines = ["settings:", "  allowed_networks: [127.0.0.1/32]", "  poll_interval: 1h",
                 "  web:", "    enabled: false", "feeds:"]
        for feed in range(feeds):
            site.put(f"/f{feed}.xml", "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                     f"<title>Outlet {feed}</title>{''.join(items[feed])}</channel></rss>", "application/rss+xml")
            lines += [f"  - name: Outlet {feed}", f"    url: {site.url(f'/f{feed}.xml')}",
                      f"    full_text: {'true' if feed % 2 == 0 else 'false'}"]
        self.feeds = feeds
        self.site = site
        self.config = folder / "feeds.yaml"
        self.config.write_text("\n".join(lines) + "\n")


def _slow(site: LocalSite, body: str, seconds: float):
    data = body.encode()

    def handler(request) -> None:
        time.sleep(seconds)
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    return handler


# ---- processes and what they stored ---------------------------------------------------------------------


def _start(command: str, database: str, config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "aggregator", "--config", str(config), "--database", database,
                             "--log-level", "INFO", command], cwd=ROOT, env=env, stdout=out, stderr=out)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scalar(engine, query: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(query), params).scalar()


def _settled(engine, expected: int) -> bool:
    """Everything stored, nothing staged, no job waiting or running."""
    return (_scalar(engine, "SELECT count(*) FROM article") >= expected
            and _scalar(engine, "SELECT count(*) FROM pending_article") == 0
            and _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')") == 0)


def _wait_for(condition, what: str, logs: list[Path] = (), timeout: float = WAIT,
              processes: list[subprocess.Popen] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(process.poll() is None for process in processes):
        try:
            if condition():
                return
        except ProgrammingError:  # the tables appear once the first process has set the database up
            pass
        time.sleep(0.3)
    tails = "\n".join(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:] for log in logs if log.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def _partition(engine) -> set[frozenset[tuple[str, str]]]:
    """The stories as sets of article identities; checks every article is stored once, in one live story."""
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT a.source_key, a.external_id, a.story_id, s.merged_into FROM article a "
            "LEFT JOIN story s ON s.id = a.story_id")).all()
        counts = dict(connection.execute(text(
            "SELECT s.id, s.article_count FROM story s WHERE s.merged_into IS NULL")).all())
    identities = [(source, external) for source, external, _, _ in rows]
    assert len(identities) == len(set(identities)), "an article was stored twice"
    stories: dict[int, set] = {}
    for source, external, story, merged in rows:
        assert story is not None and merged is None, f"{source} {external} is not in one live story"
        stories.setdefault(story, set()).add((source, external))
    for story, members in stories.items():
        assert counts[story] == len(members), f"story {story} counts {counts[story]}, holds {len(members)}"
    return {frozenset(members) for members in stories.values()}


def _reference(tmp_path: Path, config: Path) -> set[frozenset]:
    """The stories a single process makes of the same input."""
    from aggregator.config import load_config
    from aggregator.pipeline import poll_once
    from aggregator.store import open_database

    engine = open_database(f"sqlite:///{tmp_path}/reference.db")
    try:
        poll_once(engine, load_config(config))
        return _partition(engine)
    finally:
        engine.dispose()


# this test's database only: other runs may share the server
_OURS = "FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE "


def _holder_pid(engine, role: str) -> int | None:
    """The process id of the cluster process holding ``role``'s lock, from its application_name."""
    name = _scalar(engine, "SELECT application_name " + _OURS + ":n", n=f"aggregator {role} %")
    return int(name.rsplit(":", 1)[1]) if name else None


# ---- tests ----------------------------------------------------------------------------------------------


def test_a_one_shot_poll_holds_the_sequencer_lock_under_its_name(pg_database):
    from aggregator.store import DaemonLock, open_database
    from aggregator.workers.leadership import SEQUENCER_KEY, Leadership

    engine = open_database(pg_database())
    sequencer = Leadership(engine, SEQUENCER_KEY, "sequencer")
    try:
        with DaemonLock(engine, purpose="poll"):
            assert not sequencer.try_acquire()  # a poll writes stories: no sequencer beside it
            assert _scalar(engine, "SELECT count(*) " + _OURS +
                           "'aggregator poll %'") == 1
        assert sequencer.try_acquire()  # released, though its connection went back to the pool
        assert _scalar(engine, "SELECT count(*) " + _OURS +
                       "'aggregator poll %'") == 0
    finally:
        sequencer.dispose()
        engine.dispose()


def test_worker_refuses_sqlite(tmp_path, capsys):
    from aggregator.cli import main

    config = tmp_path / "feeds.yaml"
    config.write_text("feeds:\n  - name: A\n    url: https://example.org/feed.xml\n")
    code = main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/a.db", "worker"])
    assert code == 1
    assert "PostgreSQL" in capsys.readouterr().err


def test_one_process_at_a_time_holds_a_role_and_a_standby_takes_it_over(pg_database):
    from aggregator.store import open_database
    from aggregator.workers.leadership import SEQUENCER_KEY, Leadership

    engine = open_database(pg_database())
    first, second = (Leadership(engine, SEQUENCER_KEY, "sequencer") for _ in range(2))
    try:
        assert first.try_acquire() and first.alive()
        assert not second.try_acquire()
        name = _scalar(engine, "SELECT application_name " + _OURS +
                       "'aggregator sequencer %'")
        assert name.endswith(f":{os.getpid()}")
        first.release()
        assert second.try_acquire()
    finally:
        first.dispose()
        second.dispose()
        engine.dispose()


def test_a_page_staged_twice_is_stored_once_in_one_story(pg_database):
    from aggregator.config import Config, Settings
    from aggregator.ingest import Incoming
    from aggregator.store import open_database
    from aggregator.workers.queue import ensure_schema
    from aggregator.workers.sequencer import Sequencer
    from aggregator.workers.tasks import stage

    engine = open_database(pg_database())
    ensure_schema(engine)
    item = Incoming(source_key="Wire", external_id="a1", source="Wire", title="Harbour bridge reopens",
                    text="The harbour bridge reopened on Monday after repairs. " * 20, fetched_at=utcnow())
    copy = Incoming(**{**item.__dict__, "source_key": "Paper", "source": "Paper"})
    sequencer = Sequencer(engine, Config(Settings(), []))
    try:
        assert stage(engine, [item], "w1") == 1
        assert stage(engine, [item, copy], "w2") == 1  # a job redone after its worker died
        assert sequencer.lead()
        assert sequencer.drain_once() == 2
        assert sequencer.drain_once() == 0
        assert stage(engine, [item], "w3") == 1  # extracted again after it was stored: staged, not stored twice
        assert sequencer.drain_once() == 1
        assert _scalar(engine, "SELECT count(*) FROM pending_article") == 0
        assert _scalar(engine, "SELECT count(*) FROM article") == 2
        assert len(_partition(engine)) == 1  # the copy joined the wire story
    finally:
        sequencer.leadership.dispose()
        engine.dispose()


def test_a_feeds_extraction_jobs_are_queued_together_and_a_waiting_one_is_not_queued_twice(pg_database):
    import asyncio

    from aggregator.config import Config, FeedConfig, Settings
    from aggregator.parse import ParsedEntry
    from aggregator.pipeline import _Progress
    from aggregator.store import open_database
    from aggregator.workers.queue import ensure_schema, make_app
    from aggregator.workers.tasks import PAGES_PER_JOB, QueuePoller

    url = pg_database()
    engine = open_database(url)
    ensure_schema(engine)
    feed = FeedConfig(name="Paper", url="http://127.0.0.1/feed.xml", full_text=True)
    entries = [ParsedEntry(external_id=f"e{n:02d}", title=f"Entry {n}", url=f"http://127.0.0.1/{n}.html",
                           canonical_url=None, summary="", content="", author=None, published=None)
               for n in range(3 * PAGES_PER_JOB)]

    async def take(fresh: list[ParsedEntry]) -> int:
        app = make_app(url)
        async with app.open_async():
            poller = QueuePoller(engine, Config(Settings(), [feed]), None, app, "test")
            return await poller._take(feed, None, fresh, _Progress())

    def queued() -> list[int]:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT args FROM procrastinate_jobs WHERE status = 'todo' ORDER BY id"))
            return [len(args["entries"]) for (args,) in rows]

    try:
        first = entries[: 2 * PAGES_PER_JOB]
        assert asyncio.run(take(first)) == len(first)
        assert queued() == [PAGES_PER_JOB, PAGES_PER_JOB]
        assert asyncio.run(take(first)) == 0  # polled again before a worker took them: nothing queued twice
        assert asyncio.run(take(entries)) == PAGES_PER_JOB  # only the new entries' job joins the waiting ones
        assert queued() == [PAGES_PER_JOB] * 3
    finally:
        engine.dispose()


def test_an_article_the_engine_cannot_take_does_not_hold_up_those_staged_after_it(pg_database, caplog):
    from aggregator.config import Config, Settings
    from aggregator.ingest import Incoming
    from aggregator.store import open_database
    from aggregator.workers.queue import ensure_schema
    from aggregator.workers.sequencer import Sequencer
    from aggregator.workers.tasks import stage

    engine = open_database(pg_database())
    ensure_schema(engine)
    items = [Incoming(source_key="Wire", external_id=f"a{n}", source="Wire", title=f"Story number {n} of the day",
                      text=f"Paragraph {n} about a distinct event. " * 20, fetched_at=utcnow()) for n in range(4)]
    sequencer = Sequencer(engine, Config(Settings(), []))
    try:
        assert stage(engine, items, "w1") == 4
        assert sequencer.lead()
        batch = sequencer.ingestor.ingest_batch

        def fails_on_a2(session, batch_items):
            if any(item.external_id == "a2" for item in batch_items):
                raise ValueError("an article the engine cannot take")
            return batch(session, batch_items)

        sequencer.ingestor.ingest_batch = fails_on_a2
        with pytest.raises(ValueError):
            sequencer.drain_once()  # the batch of four fails: its rows now go one at a time
        assert [sequencer.drain_once() for _ in range(5)] == [1, 1, 0, 1, 0]
        assert "Wire/a2" in caplog.text and "left in the staging table" in caplog.text
        assert _scalar(engine, "SELECT count(*) FROM article") == 3
        assert _scalar(engine, "SELECT external_id FROM pending_article") == "a2"  # kept, not lost
    finally:
        sequencer.leadership.dispose()
        engine.dispose()


@pytest.mark.slow
def test_one_run_and_three_workers_make_the_single_process_stories(tmp_path, site, pg_database):
    cluster = ClusterSite(site, tmp_path, feeds=50)
    expected = _reference(tmp_path, cluster.config)
    assert sum(len(story) for story in expected) == cluster.expected
    assert any(len(story) > 1 for story in expected)
    database = pg_database()
    logs = [tmp_path / f"p{index}.log" for index in range(4)]
    processes = [_start("run", database, cluster.config, logs[0])]
    processes += [_start("worker", database, cluster.config, log) for log in logs[1:]]
    engine = create_engine(database)
    try:
        _wait_for(lambda: _settled(engine, cluster.expected), "the cluster to store every article", logs,
                  processes=processes)
        assert _scalar(engine, "SELECT count(*) FROM procrastinate_workers") == 4
        assert _partition(engine) == expected
        assert sum("feed=" in log.read_text() for log in logs) >= 2, "one process polled every feed"
    finally:
        _stop(processes)
        engine.dispose()
    assert all(process.returncode == 0 for process in processes), [p.returncode for p in processes]


def _doing_jobs_of(engine, worker_id: int) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND "
                                             "worker_id = :w"), {"w": worker_id}).scalars())


def _worker_ids(engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM procrastinate_workers ORDER BY id")).scalars())


@pytest.mark.slow
def test_a_job_of_a_killed_worker_is_done_again_elsewhere(tmp_path, site, pg_database):
    cluster = ClusterSite(site, tmp_path, feeds=10, stories=16, slow_pages=3.0)
    expected = _reference(tmp_path, cluster.config)
    database = pg_database()
    logs = [tmp_path / "run.log", tmp_path / "worker.log"]
    # the worker first, waiting for jobs when the first ones are queued: started after the run, on a slow
    # machine it came up once the run's own worker had done them all
    worker = _start("worker", database, cluster.config, logs[1])
    engine = create_engine(database)
    run = None
    try:
        _wait_for(lambda: len(_worker_ids(engine)) == 1, "the worker", logs, processes=[worker])
        worker_id = _worker_ids(engine)[0]  # procrastinate's workers table holds ids and heartbeats only
        run = _start("run", database, cluster.config, logs[0])
        _wait_for(lambda: len(_worker_ids(engine)) == 2, "the run's worker", logs, processes=[run, worker])
        held: list[int] = []

        def worker_busy() -> bool:
            held[:] = _doing_jobs_of(engine, worker_id)
            return bool(held)

        _wait_for(worker_busy, "the worker to take a job", logs, processes=[run, worker])
        worker.send_signal(signal.SIGKILL)  # mid-job: its page takes 3 s to arrive
        worker.wait(timeout=10)
        _wait_for(lambda: _settled(engine, cluster.expected), "the killed worker's jobs to be redone", logs,
                  processes=[run])
        assert _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(:ids)", ids=held) == 0, \
            "a job of the killed worker was not done again (successful jobs are deleted)"
        assert _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'") == 0
        assert "of a vanished worker is queued again" in logs[0].read_text()
        assert _partition(engine) == expected
    finally:
        _stop([worker] + ([run] if run else []))
        engine.dispose()


@pytest.mark.slow
def test_the_standby_sequencer_takes_over_from_a_killed_one(tmp_path, site, pg_database):
    cluster = ClusterSite(site, tmp_path, feeds=10, stories=16, slow_pages=1.0)
    expected = _reference(tmp_path, cluster.config)
    database = pg_database()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    runs = [_start("run", database, cluster.config, log) for log in logs]
    engine = create_engine(database)
    try:
        _wait_for(lambda: _scalar(engine, "SELECT count(*) FROM article") > 0, "the first stored articles", logs,
                  processes=runs)
        holder = _holder_pid(engine, "sequencer")
        assert holder in (runs[0].pid, runs[1].pid)
        killed = next(run for run in runs if run.pid == holder)
        survivor = next(run for run in runs if run.pid != holder)
        assert _scalar(engine, "SELECT count(*) FROM article") < cluster.expected, "killed after the work was done"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        _wait_for(lambda: _holder_pid(engine, "sequencer") == survivor.pid, "the standby to take over", logs,
                  timeout=30, processes=[survivor])
        _wait_for(lambda: _settled(engine, cluster.expected), "the new sequencer to store everything", logs,
                  processes=[survivor])
        assert _partition(engine) == expected
    finally:
        _stop(runs)
        engine.dispose()


@pytest.mark.slow
def test_two_runs_poll_each_feed_once_per_interval(tmp_path, site, pg_database, capsys):
    from aggregator.cli import main

    cluster = ClusterSite(site, tmp_path, feeds=10, stories=12)
    database = pg_database()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    runs = [_start("run", database, cluster.config, log) for log in logs]
    engine = create_engine(database)
    feeds = [f"/f{index}.xml" for index in range(cluster.feeds)]
    try:
        _wait_for(lambda: _settled(engine, cluster.expected), "the cluster to store every article", logs,
                  processes=runs)
        assert [site.hits[path] for path in feeds] == [1] * cluster.feeds
        assert main(["--config", str(cluster.config), "--database", database, "poll"]) == 1
        assert "already running" in capsys.readouterr().err  # a one-shot poll would be a second story writer
        # The scheduler's holder dies: the other takes over, and polls nothing before its interval is up.
        holder = _holder_pid(engine, "scheduler")
        killed = next(run for run in runs if run.pid == holder)
        survivor = next(run for run in runs if run.pid != holder)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        _wait_for(lambda: _holder_pid(engine, "scheduler") == survivor.pid, "the standby scheduler to take over",
                  logs, timeout=30, processes=[survivor])
        time.sleep(3)  # its first turns, were it to poll at once
        assert [site.hits[path] for path in feeds] == [1] * cluster.feeds
        assert _scalar(engine, "SELECT count(*) FROM article") == cluster.expected
    finally:
        _stop(runs)
        engine.dispose()
