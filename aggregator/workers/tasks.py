"""The queue's jobs: poll one feed, fetch and extract one page; what they produce goes to the staging table.

They run the single-process pipeline's own code (:class:`~aggregator.pipeline.Poller`), except at its last step:
instead of deciding duplicates and stories, a worker stages the article for the sequencer.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from ..config import Config, FeedConfig
from ..ingest import Incoming
from ..models import Article, PendingArticle, utcnow
from ..parse import ParsedEntry
from ..pipeline import WRITE_BATCH, Poller, _Progress, incoming_from
from .queue import QUEUE

POLL_FEED = "poll_feed"
EXTRACT_ENTRY = "extract_entry"  # jobs queued by an earlier version: one entry each
EXTRACT_ENTRIES = "extract_entries"
# Pages of one feed in one job. A job costs PostgreSQL ~5 ms of CPU (take, finish, its events) and its worker two
# round trips (is it stored already, stage it) besides the job's own: about as much as a page's extraction
# again, so pages go four to a job. Their fetches and extractions still run side by side within the job, and a
# redone job skips the pages already staged.
PAGES_PER_JOB = 4
_PENDING = PendingArticle.__table__
# an entry staged already (a job redone, a page deferred twice) is left as it is
_STAGE = (insert(_PENDING).on_conflict_do_nothing(constraint="uq_pending_article_identity")
          .returning(_PENDING.c.id))


@dataclass
class WorkerRuntime:
    """What the jobs of one worker process share: the database, the config, the poller (and its fetcher)."""

    app: procrastinate.App
    engine: Engine
    config: Config
    poller: QueuePoller
    name: str  # how this worker signs the rows it stages


def _runtime(context: procrastinate.JobContext) -> WorkerRuntime:
    return context.additional_context["runtime"]


def register_tasks(app: procrastinate.App) -> None:
    """Make the jobs known to ``app`` (each app its own task objects, so a process may open several)."""
    # A retry strategy also queues again a job cut short by its worker's shutdown (after its grace period).
    app.task(name=POLL_FEED, queue=QUEUE, pass_context=True,
             retry=procrastinate.RetryStrategy(max_attempts=2, wait=5))(poll_feed)
    # A page is asked for once (the feed's validators are saved when its jobs are queued), so its job's retries,
    # 5 s to 10 min apart, outlast a database failover.
    for name, job in ((EXTRACT_ENTRIES, extract_entries), (EXTRACT_ENTRY, extract_entry)):
        app.task(name=name, queue=QUEUE, pass_context=True,
                 retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=5))(job)


async def poll_feed(context: procrastinate.JobContext, feed_name: str) -> None:
    """Fetch and parse one feed, then stage its new entries or defer their pages' extraction."""
    runtime = _runtime(context)
    await runtime.poller.poll_feed(runtime.config.feed(feed_name))  # logs and records its own outcome


async def extract_entries(context: procrastinate.JobContext, feed: str, feed_id: int | None,
                          entries: list[dict]) -> None:
    """Fetch and extract the pages of some entries of one feed and stage their articles (a page that cannot be
    fetched leaves the feed's own text, as in a single-process poll). Redone after a worker died: the entries
    stored or staged by then are skipped, and the others staged once all the same."""
    runtime = _runtime(context)
    parsed = [entry_from_job(entry) for entry in entries]
    taken = await asyncio.to_thread(taken_ids, runtime.engine, feed, [entry.external_id for entry in parsed])
    parsed = [entry for entry in parsed if entry.external_id not in taken]
    if not parsed:
        return
    texts = await asyncio.gather(*(runtime.poller.page_text(entry.url) if entry.url else _no_text()
                                   for entry in parsed))
    items = [incoming_from(feed, feed_id, entry, text) for entry, text in zip(parsed, texts, strict=True)]
    fetched = utcnow()
    for item in items:
        item.fetched_at = fetched
    await asyncio.to_thread(stage, runtime.engine, items, runtime.name)


async def extract_entry(context: procrastinate.JobContext, feed: str, feed_id: int | None, entry: dict) -> None:
    """A job of one entry, as an earlier version queued them."""
    await extract_entries(context, feed, feed_id, [entry])


async def _no_text() -> str:
    return ""


def entry_for_job(entry: ParsedEntry) -> dict:
    """A parsed entry as job arguments (JSON)."""
    values = asdict(entry)
    values["published"] = entry.published.isoformat() if entry.published else None
    return values


def entry_from_job(values: dict) -> ParsedEntry:
    published = values.get("published")
    return ParsedEntry(**{**values, "published": datetime.fromisoformat(published) if published else None})


def stage(engine: Engine, items: list[Incoming], worker: str) -> int:
    """Insert ``items`` into the staging table in this order; an entry staged already is left as it is.
    Returns how many rows were added."""
    if not items:
        return 0
    created = utcnow()
    rows = [{**asdict(item), "created_at": created, "worker": worker} for item in items]
    added = 0
    with engine.begin() as connection:
        # One statement, compiled once a process: SQLAlchemy sends the rows as multi-row VALUES of at most
        # WRITE_BATCH rows (under PostgreSQL's 65,535 parameters), in the same round trips as .values(rows)
        # did without compiling a new statement for every job.
        for start in range(0, len(rows), WRITE_BATCH):
            added += len(connection.execute(_STAGE, rows[start : start + WRITE_BATCH]).all())
    return added


def staged_ids(engine: Engine, source_key: str, external_ids: list[str]) -> set[str]:
    """Which of ``external_ids`` of ``source_key`` wait in the staging table."""
    found: set[str] = set()
    with engine.connect() as connection:
        for start in range(0, len(external_ids), 500):
            found.update(connection.execute(
                select(_PENDING.c.external_id).where(_PENDING.c.source_key == source_key,
                                                     _PENDING.c.external_id.in_(external_ids[start : start + 500]))
            ).scalars())
    return found


def taken_ids(engine: Engine, source_key: str, external_ids: list[str]) -> set[str]:
    """Which of ``external_ids`` of ``source_key`` are stored or staged already (a job redone after its worker
    died, or an entry deferred twice), in one statement."""
    if not external_ids:
        return set()
    statements = [select(table.c.external_id).where(table.c.source_key == source_key,
                                                   table.c.external_id.in_(external_ids))
                  for table in (Article.__table__, _PENDING)]
    with engine.connect() as connection:
        return set(connection.execute(union(*statements)).scalars())


class QueuePoller(Poller):
    """The pipeline's poller whose last step hands the new entries on instead of storing them: a feed's own text
    is staged at once, a page to extract becomes an ``extract_entry`` job that any worker may take."""

    def __init__(self, engine: Engine, config: Config, fetcher, app: procrastinate.App, name: str):
        super().__init__(engine, config, fetcher)
        self.app = app
        self.name = name

    def _unseen(self, feed_name: str, entries: list[ParsedEntry]) -> list[ParsedEntry]:
        fresh = super()._unseen(feed_name, entries)
        staged = staged_ids(self.engine, feed_name, [entry.external_id for entry in fresh]) if fresh else set()
        return [entry for entry in fresh if entry.external_id not in staged]

    async def _take(self, feed: FeedConfig, feed_id: int, fresh: list[ParsedEntry], progress: _Progress) -> int:
        # oldest first, as the single-process poller stores them
        fresh = sorted(fresh, key=lambda e: (e.published or datetime.max, e.external_id))
        to_extract, inline = [], []
        for entry in fresh:
            if feed.full_text and entry.url:
                to_extract.append(entry)
            else:
                inline.append(incoming_from(feed.name, feed_id, entry))
                inline[-1].fetched_at = utcnow()
        progress.stored += await asyncio.to_thread(stage, self.engine, inline, self.name)
        batches = [to_extract[start : start + PAGES_PER_JOB] for start in range(0, len(to_extract), PAGES_PER_JOB)]
        jobs = [self._job_of(feed.name, feed_id, batch) for batch in batches]
        if len(jobs) > 1:
            # The feed's jobs in one statement and one commit (each its own otherwise). One of them still
            # waiting from an earlier poll fails them all: they are then queued one at a time, below.
            try:
                await self.app.job_manager.batch_defer_jobs_async(jobs)
            except AlreadyEnqueued:
                pass
            else:
                return progress.stored + len(to_extract)
        for batch, job in zip(batches, jobs, strict=True):
            try:
                await self.app.job_manager.defer_job_async(job)
            except AlreadyEnqueued:
                continue  # an earlier poll's job for these entries has not started yet
            progress.stored += len(batch)
        return progress.stored

    def _job_of(self, feed: str, feed_id: int, entries: list[ParsedEntry]) -> procrastinate.jobs.Job:
        """The job extracting ``entries``, not queued yet."""
        deferrer = self.app.configure_task(EXTRACT_ENTRIES, queue=QUEUE, queueing_lock=_lock_of(feed, entries))
        return deferrer.make_new_job(feed=feed, feed_id=feed_id, entries=[entry_for_job(entry) for entry in entries])


def _lock_of(feed: str, entries: list[ParsedEntry]) -> str:
    """The queueing lock of a job of ``entries``: the same entries are not queued twice while it waits."""
    ids = hashlib.sha1("\n".join(entry.external_id for entry in entries).encode()).hexdigest()
    return f"extract {feed} {ids}"
