"""The daemon as a user runs it: start, poll, SIGTERM, restart; and a second daemon refused."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from aggregator.demo import serve_round
from aggregator.models import Article
from aggregator.store import open_database

pytestmark = pytest.mark.slow


def _start(config, database, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), "--database", database, *extra, "run"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _count(database):
    engine = open_database(database)
    try:
        with Session(engine) as session:
            total = session.exec(select(func.count()).select_from(Article)).one()
            identities = session.exec(
                select(func.count()).select_from(
                    select(Article.source_key, Article.external_id).distinct().subquery()
                )
            ).one()
            unassigned = session.exec(
                select(func.count()).select_from(Article).where(Article.story_id == None)  # noqa: E711
            ).one()
        return total, identities, unassigned
    finally:
        engine.dispose()


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _stop(process):
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    return process.returncode, time.monotonic() - started, output


def test_daemon_polls_stops_on_sigterm_and_restarts_without_duplicates(tmp_path, demo_site, demo_config_file,
                                                                        three_outlets):
    database = f"sqlite:///{tmp_path}/daemon.db"
    round1 = sum(1 for a in three_outlets.articles if a.round == 1)

    first = _start(demo_config_file, database)
    try:
        assert _wait_for(lambda: _count(database)[0] >= round1), "the daemon stored nothing"
        # A second daemon on the same database refuses to start, with a clear message.
        second = _start(demo_config_file, database)
        output, _ = second.communicate(timeout=30)
        assert second.returncode != 0
        assert "already running" in output
    finally:
        code, seconds, output = _stop(first)
    assert code == 0, output
    assert seconds < 10
    assert "feed=Continental Press status=ok" in output  # one log line per feed poll
    assert Path(f"{tmp_path}/daemon.db.engine").exists()  # the engine saved at shutdown, for a quick restart

    serve_round(demo_site, three_outlets, 2)
    restarted = _start(demo_config_file, database)
    try:
        assert _wait_for(lambda: _count(database)[0] >= len(three_outlets.articles)), "round 2 not stored"
        time.sleep(1)
    finally:
        code, seconds, output = _stop(restarted)
    assert code == 0, output
    assert "engine restored from its snapshot" in output
    total, identities, unassigned = _count(database)
    assert total == identities == len(three_outlets.articles)
    assert unassigned == 0


def test_sigterm_during_polls_logs_one_line_and_no_traceback(tmp_path, site):
    """Polls in flight when SIGTERM arrives are cancelled quietly: one line, no traceback per job."""
    import threading

    release = threading.Event()

    def slow(handler):
        release.wait(20)  # the daemon's fetches hang here until the test ends
        handler.send_response(503)
        handler.end_headers()

    names = [f"Slow {n}" for n in range(4)]
    for n in range(4):
        site.route(f"/slow{n}.xml", slow)
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  allow_private_networks: true\nfeeds:\n" + "".join(
        f"  - name: {name}\n    url: {site.url(f'/slow{n}.xml')}\n" for n, name in enumerate(names)))
    database = f"sqlite:///{tmp_path}/slow.db"
    process = _start(config, database)
    try:
        # Two fetches hang at the server (the per-host limit), the other two polls wait for a slot.
        assert _wait_for(lambda: sum(site.hits.values()) >= 2), "the polls never started"
        time.sleep(1)
        code, seconds, output = _stop(process)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert code == 0, output
    assert seconds < 10
    assert "Traceback" not in output and "CancelledError" not in output, output
    assert output.count("jobs in flight") == 1, output


def test_a_digest_folder_that_cannot_be_written_is_one_log_line(tmp_path, caplog):
    import asyncio
    import logging

    from aggregator.config import parse_config
    from aggregator.scheduler import Daemon

    (tmp_path / "taken").write_text("a file where the digest folder should be")
    config = parse_config(f"settings:\n  digest_dir: {tmp_path / 'taken' / 'digests'}\nfeeds: []\n")
    daemon = Daemon(open_database(f"sqlite:///{tmp_path}/d.db"), config)
    with caplog.at_level(logging.INFO, logger="aggregator.daemon"):
        asyncio.run(daemon._digest_job())
    (record,) = [r for r in caplog.records if r.name == "aggregator.daemon"]
    assert record.levelname == "ERROR" and record.exc_info is None
    assert record.getMessage().startswith("digest failed: ") and "Not a directory" in record.getMessage()


def test_a_database_error_in_maintenance_is_one_log_line(tmp_path, caplog, monkeypatch):
    import asyncio
    import logging
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from aggregator import scheduler
    from aggregator.config import parse_config

    def full(*_args):
        raise OperationalError("UPDATE story", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(scheduler, "maintain", full)
    daemon = scheduler.Daemon(open_database(f"sqlite:///{tmp_path}/m.db"), parse_config("feeds: []\n"))
    with caplog.at_level(logging.INFO, logger="aggregator.daemon"):
        asyncio.run(daemon._maintenance_job())
    (record,) = [r for r in caplog.records if r.name == "aggregator.daemon"]
    assert record.exc_info is None
    assert record.getMessage() == ("maintenance failed: database error: database or disk is full "
                                   "(will retry at the next run)")
