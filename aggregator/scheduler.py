"""Scheduler stage: the daemon. One poll job per feed, a maintenance job and the daily digest job.

Every job is wrapped so that an exception is logged and never reaches the scheduler; SIGINT and SIGTERM stop
the daemon between batches of articles (each batch is its own transaction, so nothing is left half-written).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import delete

from .config import Config, ConfigError, FeedConfig
from .digest import render_digest
from .fetch import Fetcher
from .models import FetchLog, Story, utcnow
from .pipeline import Poller, database_error
from .query import Digest, build_digest
from .store import DaemonLock, session_scope

log = logging.getLogger("aggregator.daemon")

FETCH_LOG_DAYS = 30
DIGEST_SUFFIX = {"text": "txt", "markdown": "md", "html": "html", "json": "json"}


def digest_folder(config: Config) -> Path:
    """Where the daily digests go: ``digest_dir``, relative to the config file's folder."""
    folder = Path(config.settings.digest_dir).expanduser()
    if not folder.is_absolute() and config.path is not None:
        folder = config.path.resolve().parent / folder
    return folder


def check_digest_folder(config: Config) -> Path:
    """Create the digest folder and make sure a file can be written there: a daemon learns it at start,
    not at ``digest_time`` the next morning. Raises :class:`ConfigError` naming the setting."""
    folder = digest_folder(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{config.path or 'config'}: settings.digest_dir: cannot write digests to {folder}: "
                          f"{exc.strerror or exc}") from None
    return folder


def write_digest(engine: Engine, config: Config, day=None, digest: Digest | None = None) -> Path:
    """Render the day's digest (``digest``, when the caller built it already) into the configured folder;
    returns the file written."""
    settings = config.settings
    digest = digest or build_digest(engine, day, settings.timezone)
    folder = digest_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest.day.isoformat()}.{DIGEST_SUFFIX[settings.digest_format]}"
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(render_digest(digest, settings.digest_format), encoding="utf-8")
    temporary.replace(path)  # readers never see a half-written digest
    return path


class Daemon:
    def __init__(self, engine: Engine, config: Config):
        self.engine = engine
        self.config = config
        self.poller: Poller | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._stop: asyncio.Event | None = None
        self._unmailed: set = set()  # days whose digest could not be mailed yet

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; refuses to start when another daemon holds this database."""
        with DaemonLock(self.engine):
            asyncio.run(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        async with Fetcher(self.config.settings) as fetcher:
            self.poller = Poller(self.engine, self.config, fetcher)
            log.info("clustering index ready with %d open articles", self.poller.ingestor.loaded)
            self.scheduler = AsyncIOScheduler(timezone=self.config.settings.timezone)
            self._schedule_jobs()
            self.scheduler.start()
            log.info("daemon started: %d feeds", sum(f.enabled for f in self.config.feeds))
            web = self._start_web()
            await self._stop.wait()
            if web is not None:
                await self._stop_web(*web)
            await self._shut_down()
            await self.poller.save_engine()
        log.info("stopped")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _shut_down(self) -> None:
        """Stop the scheduler and cancel the jobs in flight, saying so once rather than once per job."""
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if running:
            log.info("stopping: cancelling %d jobs in flight (articles already stored are kept)", len(running))
        else:
            log.info("stopping")
        quiet = _QuietCancellation()
        executors = logging.getLogger("apscheduler.executors.default")
        executors.addFilter(quiet)
        try:
            self.scheduler.shutdown(wait=False)
            await self._cancel_running_jobs()
        finally:
            executors.removeFilter(quiet)

    def _start_web(self):
        """The web view in this event loop (setting ``web``); a port in use is logged and the daemon goes on."""
        settings = self.config.settings.web
        if not settings.enabled:
            return None
        from .api import Aggregator
        from .web.server import WebError, WebServer

        # Its own engine on the same database: page reads never wait for the poller's connections.
        agg = Aggregator(database=self.engine.url.render_as_string(hide_password=False), config=self.config)
        try:
            server = WebServer(agg, settings.host, settings.port)
        except WebError as exc:
            log.error("web view not started: %s", exc)
            agg.close()
            return None
        return server, asyncio.create_task(server.serve(), name="web"), agg

    async def _stop_web(self, server, task: asyncio.Task, agg) -> None:
        server.stop()
        try:
            await asyncio.wait_for(task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("web view failed")
        agg.close()

    async def _cancel_running_jobs(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # A cancelled poll stops between articles; each stored article was its own committed transaction.
            await asyncio.wait(tasks, timeout=5)

    def _schedule_jobs(self) -> None:
        now = datetime.now(UTC)
        for index, feed in enumerate(f for f in self.config.feeds if f.enabled):
            interval = self.config.interval_of(feed)
            # Spread the first polls over a few seconds so start-up is not one burst.
            first = now + timedelta(seconds=min(2 + index * 0.5, 30))
            self.scheduler.add_job(
                self._poll_job,
                IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 120), start_date=first),
                args=[feed],
                id=f"poll:{feed.name}",
                name=f"poll {feed.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(interval * 0.9),
                next_run_time=first,
            )
        self.scheduler.add_job(
            self._maintenance_job, IntervalTrigger(hours=1), id="maintenance", max_instances=1, coalesce=True,
            misfire_grace_time=3000,
        )
        hour, minute = (int(p) for p in self.config.settings.digest_time.split(":"))
        self.scheduler.add_job(
            self._digest_job, CronTrigger(hour=hour, minute=minute, timezone=self.config.settings.timezone),
            id="digest", max_instances=1, coalesce=True, misfire_grace_time=6 * 3600,
        )

    async def _poll_job(self, feed: FeedConfig) -> None:
        await self.poller.poll_feed(feed)  # poll_feed logs and swallows its own errors

    async def _maintenance_job(self) -> None:
        try:
            closed = await asyncio.to_thread(maintain, self.engine, self.config)
            self.poller.ingestor.clusterer.expire()
            await self.poller.save_engine()  # so that a restart need not read every open article
            if closed:
                log.info("maintenance: closed %d stories", closed)
        except Exception as exc:
            _log_job_failure("maintenance", exc)

    async def _digest_job(self) -> None:
        # At the configured hour the previous day is complete: that is the digest to read.
        day = datetime.now(ZoneInfo(self.config.settings.timezone)).date() - timedelta(days=1)
        built = None
        try:
            built = await asyncio.to_thread(build_digest, self.engine, day, self.config.settings.timezone)
            path = await asyncio.to_thread(write_digest, self.engine, self.config, day, built)
            log.info("digest written to %s", path)
        except Exception as exc:
            _log_job_failure("digest", exc)
        if self.config.settings.email is not None:
            await self._mail_digests(day, built)

    async def _mail_digests(self, day, built: Digest | None = None) -> None:
        """Mail the day's digest (``built``, when the digest job just built it), and any earlier one whose
        sending failed; a failure waits for the next turn."""
        from .web.mail import MailError, send_digest

        settings = self.config.settings
        for pending in sorted(set(self._unmailed) | {day}):
            try:
                digest = built if built is not None and pending == day else None
                digest = digest or await asyncio.to_thread(build_digest, self.engine, pending, settings.timezone)
                await asyncio.to_thread(send_digest, digest, settings.email, settings.timezone)
            except MailError as exc:
                self._unmailed.add(pending)
                log.error("digest of %s not mailed: %s (retried at the next digest)", pending, exc)
            except Exception:
                self._unmailed.add(pending)
                log.exception("digest of %s not mailed (retried at the next digest)", pending)
            else:
                self._unmailed.discard(pending)
                log.info("digest of %s mailed to %s", pending, ", ".join(settings.email.to))


def _log_job_failure(job: str, exc: Exception) -> None:
    """One line for what a person can fix (a folder that cannot be written, a full disk, a database that is
    down); a traceback only for a bug. The job runs again at its next turn."""
    if isinstance(exc, OperationalError):
        log.error("%s failed: database error: %s (will retry at the next run)", job, database_error(exc))
    elif isinstance(exc, OSError):
        log.error("%s failed: %s (will retry at the next run)", job, exc)
    else:
        log.exception("%s failed", job)


class _QuietCancellation(logging.Filter):
    """Drops APScheduler's report of a job cancelled at shutdown (a traceback per job, by design of the
    executor): the daemon has already said once that it is cancelling the polls in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def maintain(engine: Engine, config: Config) -> int:
    """Close stories with no new article in the window, prune the fetch log; returns stories closed."""
    cutoff = utcnow() - timedelta(seconds=config.settings.story_window)
    with session_scope(engine) as session:
        closed = session.exec(
            update(Story).where(Story.closed == False, Story.last_updated < cutoff).values(closed=True)  # noqa: E712
        ).rowcount
        session.exec(delete(FetchLog).where(FetchLog.started_at < utcnow() - timedelta(days=FETCH_LOG_DAYS)))
    if engine.url.get_backend_name() == "sqlite":
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
    return closed or 0
