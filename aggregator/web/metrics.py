"""``/metrics``: the process's own measurements (:mod:`aggregator.stats`) and the database's, Prometheus format."""

from __future__ import annotations

import os
import resource
from datetime import UTC

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func
from sqlmodel import Session, select

from .. import stats
from ..models import Article, Feed, Story
from ..query import last_poll


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class DatabaseCollector:
    """Figures read from the database when scraped: what is stored, what is open, when a feed last answered."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        with Session(self.engine) as session:
            articles = session.exec(select(func.count()).select_from(Article)).one()
            stories = session.exec(
                select(func.count()).select_from(Story).where(Story.merged_into == None)  # noqa: E711
            ).one()
            open_stories = session.exec(
                select(func.count()).select_from(Story).where(Story.merged_into == None, Story.closed == False)  # noqa: E711,E712
            ).one()
            paused = session.exec(
                select(func.count()).select_from(Feed).where(Feed.disabled_reason != None)  # noqa: E711
            ).one()
        yield GaugeMetricFamily("aggregator_articles_stored", "Articles in the database", value=articles)
        yield GaugeMetricFamily("aggregator_stories_stored", "Stories in the database (merged ones excluded)",
                                value=stories)
        yield GaugeMetricFamily("aggregator_open_stories", "Stories still open to new articles", value=open_stories)
        yield GaugeMetricFamily("aggregator_feeds_paused", "Feeds paused until a person resumes them", value=paused)
        polled = last_poll(self.engine)
        if polled is not None:
            when = polled.replace(tzinfo=UTC).timestamp()
            yield GaugeMetricFamily("aggregator_last_successful_poll_timestamp_seconds",
                                    "When a feed last answered (Unix time)", value=when)
        yield GaugeMetricFamily("aggregator_memory_resident_bytes", "Resident memory of this process (the engine's "
                                "index lives here in the daemon)", value=_resident_bytes())


class ClusterCollector:
    """The figures of ``aggregator status`` (:mod:`aggregator.workers.status`): feeds due everywhere; on
    PostgreSQL also the workers, the job queue, the sequencer's lag and which leaderships are held."""

    def __init__(self, engine, config=None):
        self.engine = engine
        self.config = config

    def collect(self):
        from ..workers.status import DISTRIBUTED, cluster_status

        status = cluster_status(self.engine, self.config)
        yield GaugeMetricFamily("aggregator_feeds_due", "Polled feeds whose interval has passed",
                                value=len(status.feeds.due))
        yield GaugeMetricFamily("aggregator_feeds_resting", "Feeds waiting out a failure's back-off",
                                value=status.feeds.resting)
        if status.mode != DISTRIBUTED:
            return
        jobs = GaugeMetricFamily("aggregator_queue_jobs", "Jobs in the aggregator queue by status", labels=["status"])
        for name, count in status.queue.jobs.items():
            jobs.add_metric([name], count)
        yield jobs
        if status.queue.oldest_todo_seconds is not None:
            yield GaugeMetricFamily("aggregator_queue_oldest_job_age_seconds", "How long the oldest runnable job "
                                    "has waited", value=status.queue.oldest_todo_seconds)
        yield GaugeMetricFamily("aggregator_queue_workers", "Queue workers registered (stalled ones included)",
                                value=len(status.workers))
        yield GaugeMetricFamily("aggregator_queue_workers_stalled", "Queue workers without a heartbeat for 30 s",
                                value=sum(w.stalled for w in status.workers))
        processes = GaugeMetricFamily("aggregator_processes", "Aggregator processes connected, by role",
                                      labels=["role"])
        for role in sorted({p.role for p in status.processes}):
            processes.add_metric([role], sum(p.role == role for p in status.processes))
        yield processes
        yield GaugeMetricFamily("aggregator_sequencer_leader", "1 when a process holds the sequencer lock",
                                value=int(status.sequencer.holder is not None))
        yield GaugeMetricFamily("aggregator_sequencer_standbys", "Processes ready to take the sequencer over",
                                value=len(status.sequencer.standbys))
        yield GaugeMetricFamily("aggregator_sequencer_pending_articles", "Extracted articles waiting for the "
                                "sequencer", value=status.sequencer.pending)
        yield GaugeMetricFamily("aggregator_sequencer_lag_seconds", "How long the oldest waiting article has waited "
                                "(0 when none waits)", value=status.sequencer.oldest_pending_seconds or 0)
        yield GaugeMetricFamily("aggregator_scheduler_leader", "1 when a process holds the scheduler lock",
                                value=int(status.scheduler is not None))


def metrics_text(engine, config=None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))
    registry.register(ClusterCollector(engine, config))
    return generate_latest(stats.registry()) + generate_latest(registry)
