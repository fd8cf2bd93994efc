"""What the processes sharing one database are doing: workers, the job queue, the sequencer, the feeds due.

Read-only, and safe at any time: before any worker ran, before the job queue's tables exist, and on SQLite, where
one process does everything and the answer says so. On PostgreSQL every figure comes from the database itself
(procrastinate's tables, ``pg_locks`` and ``pg_stat_activity``), so any machine that reaches it sees the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from ..config import Config, Settings
from ..digest import format_time
from ..models import Feed, utcnow
from ..store import shown_url
from .names import APPLICATION_PREFIX, SCHEDULER_KEY, SEQUENCER_KEY
from .names import QUEUE as QUEUE_NAME
from .names import STALLED_AFTER as STALLED_AFTER_SECONDS

SINGLE_PROCESS = "single-process"
DISTRIBUTED = "distributed"
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


@dataclass
class Process:
    """One aggregator process connected to the database, as its ``application_name`` names it."""

    role: str  # run, worker, sequencer, scheduler: the second word of the application_name
    name: str  # host:pid
    client: str | None  # the address it connects from (None over a Unix socket)
    connections: int
    connected_since: datetime | None


@dataclass
class Holder:
    """The process holding a leadership lock, and the connection it holds it on."""

    name: str
    application_name: str
    backend_pid: int
    client: str | None
    since: datetime | None  # when its connection opened (the lock is held from then or later)


@dataclass
class WorkerBeat:
    """A queue worker as procrastinate registers it, with the jobs it is running."""

    id: int
    last_heartbeat: datetime
    seconds_since_heartbeat: float
    jobs_doing: int
    stalled: bool


@dataclass
class SequencerStatus:
    holder: Holder | None = None
    standbys: list[str] = field(default_factory=list)  # processes waiting to take over
    pending: int = 0  # extracted articles not yet ingested
    oldest_pending_seconds: float | None = None  # the lag: how long the oldest of them has waited


@dataclass
class QueueStatus:
    jobs: dict[str, int] = field(default_factory=dict)  # job status -> count, for the aggregator queue
    oldest_todo_seconds: float | None = None  # how long the oldest runnable job has waited


@dataclass
class FeedDue:
    name: str
    due_since: datetime | None  # None: never polled


@dataclass
class FeedsStatus:
    total: int = 0  # feeds that are polled (enabled and not paused)
    due: list[FeedDue] = field(default_factory=list)
    resting: int = 0  # waiting out a failure's back-off
    paused: int = 0
    next_due_at: datetime | None = None  # the earliest of the feeds not due yet


@dataclass
class ClusterStatus:
    mode: str  # single-process (SQLite) or distributed (PostgreSQL)
    database: str
    checked_at: datetime  # the database's clock, naive UTC; ages below are measured from it
    workers: list[WorkerBeat] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    queue: QueueStatus = field(default_factory=QueueStatus)
    sequencer: SequencerStatus = field(default_factory=SequencerStatus)
    scheduler: Holder | None = None
    feeds: FeedsStatus = field(default_factory=FeedsStatus)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- PostgreSQL ----------------------------------------------------------------------------------------------


def _exists(connection: Connection, table: str) -> bool:
    return connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar()


def _naive(value: datetime | None) -> datetime | None:
    """A timestamptz as naive UTC, like every stored time."""
    if value is None or value.tzinfo is None:
        return value
    return (value - value.utcoffset()).replace(tzinfo=None)


def _processes(connection: Connection) -> list[Process]:
    rows = connection.execute(text(
        "SELECT application_name, host(client_addr) AS client, count(*) AS connections, "
        "min(backend_start) AS since FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE :prefix "
        "GROUP BY application_name, host(client_addr) ORDER BY application_name"
    ), {"prefix": APPLICATION_PREFIX + "%"}).all()
    processes = []
    for row in rows:
        _, role, name = (row.application_name.split(" ", 2) + ["", ""])[:3]
        processes.append(Process(role=role, name=name, client=row.client, connections=row.connections,
                                 connected_since=_naive(row.since)))
    return processes


def _holder(connection: Connection, key: int) -> Holder | None:
    # pg_try_advisory_lock(bigint) shows as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
    row = connection.execute(text(
        "SELECT a.pid, a.application_name, host(a.client_addr) AS client, a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::text::bigint = :high AND l.objid::text::bigint = :low LIMIT 1"
    ), {"high": key >> 32, "low": key & 0xFFFFFFFF}).first()
    if row is None:
        return None
    if row.application_name.startswith(APPLICATION_PREFIX) and row.application_name.count(" ") >= 2:
        name = row.application_name.split(" ", 2)[2]
    else:  # a process that does not name itself (a one-shot `aggregator poll` holds the same lock)
        name = row.application_name or f"backend pid {row.pid}"
    return Holder(name=name, application_name=row.application_name, backend_pid=row.pid, client=row.client,
                  since=_naive(row.backend_start))


def _workers(connection: Connection, now: datetime) -> list[WorkerBeat]:
    rows = connection.execute(text(
        "SELECT w.id, w.last_heartbeat, count(j.id) AS doing FROM procrastinate_workers w "
        "LEFT JOIN procrastinate_jobs j ON j.worker_id = w.id AND j.status = 'doing' "
        "GROUP BY w.id, w.last_heartbeat ORDER BY w.id"
    )).all()
    beats = []
    for row in rows:
        beat = _naive(row.last_heartbeat)
        age = max(0.0, (now - beat).total_seconds())
        beats.append(WorkerBeat(id=row.id, last_heartbeat=beat, seconds_since_heartbeat=round(age, 1),
                                jobs_doing=row.doing, stalled=age > STALLED_AFTER_SECONDS))
    return beats


def _queue(connection: Connection, now: datetime) -> QueueStatus:
    counts = {status: 0 for status in JOB_STATUSES}
    for status, count in connection.execute(text(
        "SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = :q GROUP BY status"
    ), {"q": QUEUE_NAME}).all():
        counts[status] = count
    # A job's arrival is its 'deferred' event; a job scheduled for later waits from its scheduled time.
    oldest = connection.execute(text(
        "SELECT min(GREATEST(e.at, coalesce(j.scheduled_at, e.at))) FROM procrastinate_jobs j "
        "JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred' "
        "WHERE j.queue_name = :q AND j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())"
    ), {"q": QUEUE_NAME}).scalar()
    oldest = _naive(oldest)
    return QueueStatus(jobs=counts, oldest_todo_seconds=None if oldest is None else
                       round(max(0.0, (now - oldest).total_seconds()), 1))


def _lag(connection: Connection, now: datetime) -> tuple[int, float | None]:
    pending, oldest = connection.execute(text("SELECT count(*), min(created_at) FROM pending_article")).one()
    return pending, None if oldest is None else round(max(0.0, (now - oldest).total_seconds()), 1)


def _postgres_status(engine: Engine, status: ClusterStatus) -> None:
    with engine.connect() as connection:
        connection.execute(text("SET TRANSACTION READ ONLY"))
        status.checked_at = _naive(connection.execute(text("SELECT now()")).scalar())
        now = status.checked_at
        status.processes = _processes(connection)
        status.sequencer.holder = _holder(connection, SEQUENCER_KEY)
        status.scheduler = _holder(connection, SCHEDULER_KEY)
        # Every `run` process is ready to take the sequencer over; a standby asks for the lock on a connection
        # of its own only now and then, so the runs are counted, not the askers.
        holder = status.sequencer.holder
        status.sequencer.standbys = sorted(
            {p.name for p in status.processes if p.role in ("run", "sequencer")} - {holder.name if holder else ""}
        )
        if _exists(connection, "pending_article"):
            status.sequencer.pending, status.sequencer.oldest_pending_seconds = _lag(connection, now)
        else:
            status.notes.append("no staging table yet (pending_article): no worker has run on this database")
        if _exists(connection, "procrastinate_jobs") and _exists(connection, "procrastinate_workers"):
            status.workers = _workers(connection, now)
            status.queue = _queue(connection, now)
        else:
            status.notes.append("the job queue's tables do not exist yet: no run or worker has started here")
        connection.rollback()


# ---- feeds ---------------------------------------------------------------------------------------------------


def feeds_due(engine: Engine, config: Config | None, now: datetime) -> FeedsStatus:
    """Which polled feeds are due at ``now`` (naive UTC): never polled, or last polled an interval ago or more,
    and neither paused nor resting. Intervals are the config's (the global default without one)."""
    settings = config.settings if config else Settings()
    with Session(engine) as session:
        stored = {feed.name: feed for feed in session.exec(select(Feed)).all()}
    if config is not None:
        intervals = {f.name: config.interval_of(f) for f in config.feeds if f.enabled}
    else:
        intervals = {name: settings.poll_interval for name in stored}
    result = FeedsStatus()
    for name in sorted(intervals):
        feed = stored.get(name)
        if feed is not None and feed.disabled_reason:
            result.paused += 1
            continue
        result.total += 1
        if feed is None or feed.last_fetched_at is None:
            result.due.append(FeedDue(name=name, due_since=None))
            continue
        due_at = feed.last_fetched_at + timedelta(seconds=intervals[name])
        if feed.retry_after is not None and feed.retry_after > now:
            result.resting += 1
            due_at = feed.retry_after
        if due_at <= now:
            result.due.append(FeedDue(name=name, due_since=due_at))
        elif result.next_due_at is None or due_at < result.next_due_at:
            result.next_due_at = due_at
    return result


# ---- the whole picture ---------------------------------------------------------------------------------------


def cluster_status(engine: Engine, config: Config | None = None) -> ClusterStatus:
    """Everything ``aggregator status`` shows, read from the database without changing it."""
    postgres = engine.url.get_backend_name() == "postgresql"
    status = ClusterStatus(mode=DISTRIBUTED if postgres else SINGLE_PROCESS, database=shown_url(engine.url),
                           checked_at=utcnow())
    if postgres:
        _postgres_status(engine, status)
    else:
        status.notes.append("SQLite: one process polls, extracts and clusters; there are no workers or queue")
    status.feeds = feeds_due(engine, config, status.checked_at)
    return status


# ---- for people ----------------------------------------------------------------------------------------------


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _holder_line(holder: Holder | None, tz: str) -> str:
    if holder is None:
        return "none (no process holds the lock)"
    where = f" from {holder.client}" if holder.client else ""
    return f"{holder.name}{where} (connected {format_time(holder.since, tz)}, backend pid {holder.backend_pid})"


def render_status(status: ClusterStatus, tz: str = "UTC", shown_due: int = 10) -> str:
    """The status as a few aligned lines for a terminal."""
    lines = [f"{'mode':10} {status.mode} ({status.database}), at {format_time(status.checked_at, tz)}"]
    if status.mode == DISTRIBUTED:
        sequencer = status.sequencer
        lines.append(f"{'sequencer':10} {_holder_line(sequencer.holder, tz)}")
        if sequencer.standbys:
            lines.append(f"{'':10} standby: {', '.join(sequencer.standbys)}")
        waited = _ago(sequencer.oldest_pending_seconds)
        lines.append(f"{'':10} lag: {sequencer.pending} pending, oldest waiting {waited}")
        lines.append(f"{'scheduler':10} {_holder_line(status.scheduler, tz)}")
        jobs = ", ".join(f"{name} {count}" for name, count in status.queue.jobs.items()) or "-"
        lines.append(f"{'queue':10} {jobs}; oldest runnable job waiting {_ago(status.queue.oldest_todo_seconds)}")
        stalled = sum(w.stalled for w in status.workers)
        lines.append(f"{'workers':10} {len(status.workers)} registered" + (f", {stalled} stalled" if stalled else ""))
        for worker in status.workers:
            state = "STALLED" if worker.stalled else "ok"
            lines.append(f"{'':10} #{worker.id:<6} {state:8} heartbeat {_ago(worker.seconds_since_heartbeat)} ago, "
                         f"{worker.jobs_doing} jobs running")
        # One line a process: its connections carry one application_name a role (run, worker, sequencer...).
        by_name: dict[str, list[Process]] = {}
        for process in status.processes:
            by_name.setdefault(process.name, []).append(process)
        connections = sum(p.connections for p in status.processes)
        lines.append(f"{'processes':10} {len(by_name)} connected, on {connections} connections")
        for name, parts in sorted(by_name.items()):
            roles = ", ".join(sorted({p.role for p in parts}))
            clients = sorted({p.client for p in parts if p.client})
            where = f" from {', '.join(clients)}" if clients else ""
            lines.append(f"{'':10} {name}{where}: {roles} ({sum(p.connections for p in parts)} connections)")
    feeds = status.feeds
    next_due = f"; next due {format_time(feeds.next_due_at, tz)}" if feeds.next_due_at else ""
    lines.append(f"{'feeds':10} {feeds.total} polled, {len(feeds.due)} due, {feeds.resting} resting, "
                 f"{feeds.paused} paused{next_due}")
    if feeds.due:
        names = [f.name for f in feeds.due[:shown_due]]
        more = f" and {len(feeds.due) - shown_due} more" if len(feeds.due) > shown_due else ""
        lines.append(f"{'':10} due: {', '.join(names)}{more}")
    lines.extend(f"{'note':10} {note}" for note in status.notes)
    return "\n".join(lines)
