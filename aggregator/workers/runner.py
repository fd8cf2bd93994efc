"""What ``aggregator run`` and ``aggregator worker`` do on PostgreSQL.

``worker`` takes jobs from the queue. ``run`` does the same and, in one process of the cluster at a time each,
schedules the feeds' polls (the scheduler) and stores the staged articles into stories (the sequencer); the
others stand by and take over when the holder's lock goes. One ``run`` alone therefore does everything.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta

import procrastinate
import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException, UniqueViolation
from procrastinate.jobs import Status
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ..config import Config
from ..extract import EXTRACT_WORKERS, PAGES_PER_PROCESS
from ..fetch import Fetcher
from ..models import Feed
from ..pipeline import sync_feeds
from ..scheduler import Daemon
from ..store import StoreError, shown_url
from .leadership import SCHEDULER_KEY, Leadership
from .names import STALLED_AFTER
from .queue import QUEUE, connect_args, ensure_schema, make_app, process_name, setup_lock
from .sequencer import Sequencer
from .tasks import POLL_FEED, QueuePoller, WorkerRuntime

log = logging.getLogger("aggregator.cluster")

LEADER_CHECK = 5.0  # seconds between a leader's checks of its lock (and a standby's asks for it)
# A worker's heartbeat; after STALLED_AFTER (names.py) without one its jobs are handed to another: a job of a
# killed worker runs again within STALLED_AFTER + LEADER_CHECK seconds.
HEARTBEAT = 5.0
# jobs at once in one worker: fetches overlap, extractions take turns on the processes (extract.PAGES_PER_PROCESS)
WORKER_CONCURRENCY = max(8, PAGES_PER_PROCESS * EXTRACT_WORKERS)
MAX_REDOS = 3  # runs of one job whose worker vanished before it is failed
SHUTDOWN_GRACE = 10.0  # seconds a stopping worker gives its running jobs; the others are retried elsewhere


def require_postgresql(engine: Engine, command: str) -> None:
    if engine.url.get_backend_name() != "postgresql":
        raise StoreError(f"`aggregator {command}` works with several processes on a PostgreSQL database "
                         "(database: postgresql://...); with SQLite, `aggregator run` does everything in one process")


def run_worker(engine: Engine, config: Config) -> None:
    """``aggregator worker``: take jobs until SIGINT or SIGTERM."""
    require_postgresql(engine, "worker")
    Runner(engine, config, lead=False).run()


def run_cluster(engine: Engine, config: Config) -> None:
    """``aggregator run`` on PostgreSQL: a worker, plus scheduler and sequencer when this process leads."""
    require_postgresql(engine, "run")
    Runner(engine, config, lead=True).run()


class Runner:
    def __init__(self, engine: Engine, config: Config, lead: bool):
        self.config = config
        self.lead = lead
        role = "run" if lead else "worker"
        self.name = process_name(role)
        # The process's own connections carry its name, so pg_stat_activity tells the processes apart.
        self.engine = create_engine(engine.url, pool_pre_ping=True, connect_args=connect_args(role))
        self.daemon = Daemon(self.engine, config)  # its web view (every run) and digest job (the scheduler only)
        self._stop: asyncio.Event | None = None

    def run(self) -> None:
        if logging.getLogger().level > logging.DEBUG:  # a line per job and per start: only when debugging
            logging.getLogger("procrastinate").setLevel(logging.WARNING)
        try:
            asyncio.run(self._main())
        finally:
            self.engine.dispose()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _prepare_database(self) -> None:
        try:
            ensure_schema(self.engine)
            with setup_lock(self.engine):  # processes starting together would each insert the new feeds' rows
                sync_feeds(self.engine, self.config)
        except psycopg.Error as exc:
            raise StoreError(f"cannot set up the job queue on {shown_url(self.engine.url)}: {exc}") from None

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        await asyncio.to_thread(self._prepare_database)
        app = make_app(self.engine.url, role="worker")
        async with app.open_async(), Fetcher(self.config.settings) as fetcher:
            poller = QueuePoller(self.engine, self.config, fetcher, app, self.name)
            runtime = WorkerRuntime(app, self.engine, self.config, poller, self.name)
            worker = asyncio.create_task(app.run_worker_async(
                queues=[QUEUE], name=self.name, concurrency=WORKER_CONCURRENCY, wait=True,
                additional_context={"runtime": runtime}, install_signal_handlers=False, delete_jobs="successful",
                update_heartbeat_interval=HEARTBEAT, stalled_worker_timeout=STALLED_AFTER,
                shutdown_graceful_timeout=SHUTDOWN_GRACE,
            ), name="worker")
            sequencer_stop = threading.Event()
            side, web = self._start_leading(app, sequencer_stop) if self.lead else ([], None)
            log.info("%s started: %s", "run" if self.lead else "worker", self.name)
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stopped, worker, *side], return_when=asyncio.FIRST_COMPLETED)
            failure = None
            # the queue failed (its database gone for good), or a sequencer or scheduler ended by a bug: exit, for
            # a supervisor to restart, rather than run on without it
            ended = next((task for task in (worker, *side) if task.done()), None)
            if ended is not None and not self._stop.is_set():
                failure = ended.exception() or RuntimeError(f"the {ended.get_name()} stopped")
                log.error("%s stopped: %s", ended.get_name(), failure)
            log.info("stopping")
            stopped.cancel()
            sequencer_stop.set()
            if web is not None:
                await self.daemon._stop_web(*web)
            worker.cancel()  # the worker finishes its running jobs (up to SHUTDOWN_GRACE), then returns
            await asyncio.gather(worker, *side, return_exceptions=True)
        log.info("stopped")
        if failure is not None:
            raise StoreError(f"the job queue stopped: {failure}")

    def _start_leading(self, app: procrastinate.App, sequencer_stop: threading.Event) -> tuple[list, tuple | None]:
        """A ``run``'s own tasks: sequencer (a thread: its work is synchronous) and scheduler, each leading or
        standing by, and the web view."""
        sequencer = Sequencer(self.engine, self.config)
        side = [asyncio.create_task(asyncio.to_thread(sequencer.run, sequencer_stop), name="sequencer"),
                asyncio.create_task(self._schedule(app), name="scheduler")]
        return side, self.daemon._start_web()

    # ---- the scheduler: one process at a time defers the polls ------------------------------------------

    async def _schedule(self, app: procrastinate.App) -> None:
        leadership = Leadership(self.engine, SCHEDULER_KEY, "scheduler")
        scheduler: AsyncIOScheduler | None = None
        try:
            while not self._stop.is_set():
                try:
                    if not leadership.held:
                        if await asyncio.to_thread(leadership.try_acquire):
                            scheduler = await self._start_scheduler(app)
                    elif not await asyncio.to_thread(leadership.alive):
                        scheduler.shutdown(wait=False)
                        scheduler = None
                    if leadership.held:
                        await self._retry_stalled_jobs(app)
                except Exception:  # a bug or a lost database: logged; the lead is given up and asked for again
                    log.exception("scheduler failed")
                    if scheduler is not None:
                        scheduler.shutdown(wait=False)
                        scheduler = None
                    await asyncio.to_thread(leadership.release)
                try:
                    await asyncio.wait_for(self._stop.wait(), LEADER_CHECK)
                except TimeoutError:
                    pass
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            await asyncio.to_thread(leadership.dispose)

    async def _start_scheduler(self, app: procrastinate.App) -> AsyncIOScheduler:
        """Schedule every enabled feed's poll at its interval, the first one an interval after the feed's last
        fetch (a new scheduler after a takeover does not poll again what its predecessor just polled)."""
        last_fetched = await asyncio.to_thread(self._last_fetched)
        scheduler = AsyncIOScheduler(timezone=self.config.settings.timezone)
        now = datetime.now(UTC)
        for index, feed in enumerate(f for f in self.config.feeds if f.enabled):
            interval = self.config.interval_of(feed)
            first = now + timedelta(seconds=min(1 + index * 0.1, 30))  # a start-up burst waits in the queue
            fetched = last_fetched.get(feed.name)
            if fetched is not None:
                first = max(first, fetched.replace(tzinfo=UTC) + timedelta(seconds=interval))
            scheduler.add_job(
                self._defer_poll, IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 120), start_date=first),
                args=[app, feed.name], id=f"poll:{feed.name}", max_instances=1, coalesce=True,
                misfire_grace_time=int(interval * 0.9), next_run_time=first,
            )
        hour, minute = (int(p) for p in self.config.settings.digest_time.split(":"))
        scheduler.add_job(
            self.daemon._digest_job, CronTrigger(hour=hour, minute=minute, timezone=self.config.settings.timezone),
            id="digest", max_instances=1, coalesce=True, misfire_grace_time=6 * 3600,
        )
        scheduler.start()
        log.info("scheduler started: %d feeds", sum(f.enabled for f in self.config.feeds))
        return scheduler

    def _last_fetched(self) -> dict[str, datetime]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(Feed.name, Feed.last_fetched_at).where(Feed.last_fetched_at.is_not(None)))
            return dict(rows.all())

    async def _defer_poll(self, app: procrastinate.App, feed_name: str) -> None:
        # queueing_lock: a poll waiting in the queue is not queued twice; lock: one poll of a feed at a time
        deferrer = app.configure_task(POLL_FEED, queue=QUEUE, queueing_lock=f"poll {feed_name}",
                                      lock=f"feed {feed_name}")
        try:
            await deferrer.defer_async(feed_name=feed_name)
        except AlreadyEnqueued:
            log.info("feed=%s not queued: its previous poll is still waiting for a worker", feed_name)
        except (ConnectorException, DBAPIError) as exc:
            log.error("feed=%s not queued: database error: %s (will retry at its next turn)", feed_name, exc)

    async def _retry_stalled_jobs(self, app: procrastinate.App) -> None:
        """Hand the jobs of workers that stopped beating (killed, switched off, cut off) to the others."""
        manager = app.job_manager
        try:
            for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER):
                try:
                    await self._hand_on(manager, job)
                except ConnectorException as exc:  # it changed state meanwhile: the others are still handed on
                    log.warning("job %s (%s) of a vanished worker not handed on: %s", job.id, job.task_name,
                                exc.__cause__ or exc)
            await manager.prune_stalled_workers(STALLED_AFTER)
        except ConnectorException as exc:
            log.error("stalled jobs not checked: database error: %s", exc.__cause__ or exc)

    @staticmethod
    async def _hand_on(manager, job) -> None:
        """Queue a vanished worker's job again, unless it already took down MAX_REDOS workers (then it fails, so
        a page that kills its extractor is not passed round for ever)."""
        if job.attempts + 1 >= MAX_REDOS:
            await manager.finish_job(job, Status.FAILED, delete_job=False)
            log.error("job %s (%s) failed: its worker vanished %d times", job.id, job.task_name, job.attempts + 1)
            return
        try:
            await manager.retry_job(job)
        except UniqueViolation:
            # The same poll or page waits in the queue already (deferred again since, with the same queueing
            # lock): that one does the work, this one ends.
            await manager.finish_job(job, Status.ABORTED, delete_job=True)
            log.warning("job %s (%s) of a vanished worker dropped: the same job waits in the queue",
                        job.id, job.task_name)
        else:
            log.warning("job %s (%s) of a vanished worker is queued again", job.id, job.task_name)
