"""``aggregator status``: what it reads from a real PostgreSQL database (skipped when none answers on 127.0.0.1).

Each test sets up the state the workers would leave (procrastinate's schema, worker heartbeats, jobs, a process
holding the sequencer's advisory lock under its application_name, staging rows) and checks what status reports.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from aggregator.cli import main
from aggregator.config import Config, FeedConfig, Settings
from aggregator.models import Feed, PendingArticle, utcnow
from aggregator.store import open_database
from aggregator.workers.status import (
    DISTRIBUTED,
    SCHEDULER_KEY,
    SEQUENCER_KEY,
    SINGLE_PROCESS,
    cluster_status,
)


@pytest.fixture
def engine(pg_url):
    engine = open_database(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connect(pg_url):
    """Opens raw connections named as aggregator processes name theirs; all are closed at the end."""
    import psycopg

    opened = []
    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://")

    def open_as(application_name: str):
        connection = psycopg.connect(conninfo, application_name=application_name, autocommit=True)
        opened.append(connection)
        return connection

    yield open_as
    for connection in opened:
        connection.close()


def _apply_queue_schema(engine) -> None:
    SchemaManager = pytest.importorskip("procrastinate.schema").SchemaManager

    with engine.begin() as connection:
        connection.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))


def _stage(engine, count: int, age: timedelta) -> None:
    with Session(engine) as session:
        for i in range(count):
            session.add(PendingArticle(created_at=utcnow() - age + timedelta(seconds=i), worker="w1:1",
                                       source_key="wire", external_id=f"e{i}", source="Wire", title=f"t{i}"))
        session.commit()


def test_status_reads_the_locks_queue_and_heartbeat_limit_the_cluster_uses():
    pytest.importorskip("procrastinate")
    from aggregator.workers import leadership, queue, runner, status

    assert status.SEQUENCER_KEY == leadership.SEQUENCER_KEY and status.SCHEDULER_KEY == leadership.SCHEDULER_KEY
    assert status.QUEUE_NAME == queue.QUEUE
    assert status.STALLED_AFTER_SECONDS == runner.STALLED_AFTER


def test_sqlite_reports_the_single_process_mode(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    status = cluster_status(engine)
    assert status.mode == SINGLE_PROCESS
    assert status.workers == [] and status.processes == [] and status.queue.jobs == {}
    assert status.sequencer.holder is None and status.scheduler is None
    engine.dispose()


def test_before_any_worker_ran_every_section_is_empty(engine):
    with engine.begin() as connection:  # a database upgraded from before the staging table
        connection.execute(text("DROP TABLE pending_article"))
    status = cluster_status(engine)
    assert status.mode == DISTRIBUTED
    assert status.workers == [] and status.processes == []
    assert status.queue.jobs == {} and status.queue.oldest_todo_seconds is None
    assert status.sequencer.holder is None and status.sequencer.pending == 0
    assert status.scheduler is None
    assert any("job queue" in note for note in status.notes)
    assert any("pending_article" in note for note in status.notes)


def test_the_sequencer_and_scheduler_holders_and_their_standby(engine, connect):
    leader = connect("aggregator sequencer host-a:101")
    assert leader.execute("SELECT pg_try_advisory_lock(%s)", (SEQUENCER_KEY,)).fetchone()[0]
    standby = connect("aggregator sequencer host-b:202")
    assert not standby.execute("SELECT pg_try_advisory_lock(%s)", (SEQUENCER_KEY,)).fetchone()[0]
    standby.close()  # a standby asks on a connection of its own, then closes it
    connect("aggregator run host-a:101")
    connect("aggregator run host-b:202")
    scheduler = connect("aggregator scheduler host-b:202")
    assert scheduler.execute("SELECT pg_try_advisory_lock(%s)", (SCHEDULER_KEY,)).fetchone()[0]
    connect("aggregator worker host-c:303")
    other = connect("psql")
    other.execute("SELECT pg_advisory_lock(12345)")  # someone else's advisory lock is not ours

    status = cluster_status(engine)
    holder = status.sequencer.holder
    assert holder is not None and holder.name == "host-a:101"
    assert holder.application_name == "aggregator sequencer host-a:101"
    assert holder.backend_pid == leader.info.backend_pid
    assert status.sequencer.standbys == ["host-b:202"]
    assert status.scheduler is not None and status.scheduler.name == "host-b:202"
    roles = {(p.role, p.name) for p in status.processes}
    assert roles == {("sequencer", "host-a:101"), ("run", "host-a:101"), ("run", "host-b:202"),
                     ("scheduler", "host-b:202"), ("worker", "host-c:303")}

    pid = leader.info.backend_pid
    leader.close()  # the holder dies: its lock goes with its connection, once the server has ended its session
    _wait_until_gone(engine, pid)
    status = cluster_status(engine)
    assert status.sequencer.holder is None
    assert status.sequencer.standbys == ["host-a:101", "host-b:202"]


def _wait_until_gone(engine, pid: int, timeout: float = 10.0) -> None:
    """A closed connection's backend ends a moment after the client hangs up; its locks go with it."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            alive = connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
            if alive.scalar() == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} still running {timeout:g} s after its connection closed")


def test_the_lag_is_the_staged_rows_and_the_age_of_the_oldest(engine):
    _stage(engine, 3, age=timedelta(minutes=5))
    status = cluster_status(engine)
    assert status.sequencer.pending == 3
    assert 290 <= status.sequencer.oldest_pending_seconds <= 400


def test_workers_heartbeats_and_queue_depth_by_status(engine):
    _apply_queue_schema(engine)
    with engine.begin() as connection:
        fresh = connection.execute(text("SELECT worker_id FROM procrastinate_register_worker_v1()")).scalar()
        stale = connection.execute(text(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '2 minutes') RETURNING id"
        )).scalar()
        for i in range(4):
            connection.execute(text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES ('aggregator', 'extract', :a)"
            ), {"a": json.dumps({"n": i})})
        connection.execute(text("UPDATE procrastinate_events SET at = now() - interval '90 seconds'"))
        connection.execute(text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status, worker_id) VALUES "
            "('aggregator', 'extract', 'doing', :w), ('aggregator', 'extract', 'doing', :w), "
            "('aggregator', 'poll', 'succeeded', NULL), ('aggregator', 'poll', 'failed', NULL), "
            "('elsewhere', 'other', 'doing', NULL)"
        ), {"w": fresh})
        # A job scheduled for later is not waiting yet.
        connection.execute(text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, scheduled_at) "
            "VALUES ('aggregator', 'poll', now() + interval '1 hour')"
        ))

    status = cluster_status(engine)
    assert status.queue.jobs["todo"] == 5 and status.queue.jobs["doing"] == 2
    assert status.queue.jobs["succeeded"] == 1 and status.queue.jobs["failed"] == 1
    assert 85 <= status.queue.oldest_todo_seconds <= 200
    by_id = {w.id: w for w in status.workers}
    assert by_id[fresh].jobs_doing == 2 and not by_id[fresh].stalled
    assert by_id[stale].stalled and by_id[stale].seconds_since_heartbeat >= 119
    assert not status.notes  # every table is there


def test_the_feeds_due_follow_the_config_intervals_rests_and_pauses(engine):
    now = utcnow()
    with Session(engine) as session:
        session.add(Feed(name="fresh", url="http://x/1", last_fetched_at=now - timedelta(minutes=1)))
        session.add(Feed(name="stale", url="http://x/2", last_fetched_at=now - timedelta(minutes=20)))
        session.add(Feed(name="resting", url="http://x/3", last_fetched_at=now - timedelta(hours=2),
                         retry_after=now + timedelta(minutes=30)))
        session.add(Feed(name="paused", url="http://x/4", disabled_reason="gone (410)"))
        session.add(Feed(name="fast", url="http://x/5", last_fetched_at=now - timedelta(minutes=3)))
        session.commit()
    feeds = [FeedConfig(name=n, url=f"http://x/{n}") for n in ("fresh", "stale", "resting", "paused", "new")]
    feeds += [FeedConfig(name="fast", url="http://x/5", interval="1m"), FeedConfig(name="off", url="http://x/6",
                                                                                 enabled=False)]
    config = Config(feeds=feeds, settings=Settings(poll_interval="15m"))

    status = cluster_status(engine, config)
    due = {f.name: f.due_since for f in status.feeds.due}
    assert set(due) == {"stale", "new", "fast"}
    assert due["new"] is None
    assert status.feeds.total == 5 and status.feeds.paused == 1 and status.feeds.resting == 1
    assert abs((status.feeds.next_due_at - (now + timedelta(minutes=14))).total_seconds()) < 60


def test_the_status_command_prints_text_and_json(pg_url, engine, connect, capsys):
    connect("aggregator sequencer host-a:7").execute("SELECT pg_advisory_lock(%s)", (SEQUENCER_KEY,))
    _stage(engine, 2, age=timedelta(seconds=30))
    assert main(["--database", pg_url, "status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mode"] == DISTRIBUTED
    assert shown["sequencer"]["holder"]["name"] == "host-a:7"
    assert shown["sequencer"]["pending"] == 2
    assert main(["--database", pg_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "host-a:7" in out and "2 pending" in out


def test_metrics_export_the_same_figures(engine, connect):
    from aggregator.web.metrics import metrics_text

    connect("aggregator scheduler host-s:9").execute("SELECT pg_advisory_lock(%s)", (SCHEDULER_KEY,))
    _stage(engine, 4, age=timedelta(seconds=10))
    _apply_queue_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("SELECT procrastinate_register_worker_v1()"))
    body = metrics_text(engine).decode()
    lines = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
    assert float(lines["aggregator_sequencer_pending_articles"]) == 4
    assert float(lines["aggregator_sequencer_leader"]) == 0
    assert float(lines["aggregator_scheduler_leader"]) == 1
    assert float(lines["aggregator_queue_workers"]) == 1
    assert float(lines['aggregator_queue_jobs{status="todo"}']) == 0
