"""In-process measurements of the daemon's work (polls, fetch and extraction times), for ``/metrics``.

prometheus-client keeps them in a registry of our own; the web view adds the database's figures when scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("aggregator_polls", "Feed polls by outcome (ok, not-modified, error, skipped, disabled)",
                ["status"], registry=REGISTRY)
POLL_SECONDS = Histogram("aggregator_fetch_duration_seconds", "Time to poll one feed: fetch, parse, extract, store",
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60, 120), registry=REGISTRY)
NEW_ARTICLES = Counter("aggregator_articles_new", "Articles stored by this process's polls", registry=REGISTRY)
EXTRACT_SECONDS = Histogram("aggregator_extraction_duration_seconds", "Time to extract one article page",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20), registry=REGISTRY)
EXTRACT_TIMEOUTS = Counter("aggregator_extraction_timeouts", "Pages whose extraction overran extract_timeout",
                           registry=REGISTRY)


def poll_done(status: str, seconds: float, new_articles: int) -> None:
    POLLS.labels(status).inc()
    POLL_SECONDS.observe(seconds)
    if new_articles:
        NEW_ARTICLES.inc(new_articles)
