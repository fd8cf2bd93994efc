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


def metrics_text(engine) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))
    return generate_latest(stats.registry()) + generate_latest(registry)
