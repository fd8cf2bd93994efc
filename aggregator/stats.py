"""In-process measurements of the daemon's work (polls, fetch and extraction times), for ``/metrics``.

prometheus-client keeps them in a registry of our own, created (and imported) on first use, so commands that
measure nothing do not pay for it; the web view adds the database's figures when scraped.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

_lock = threading.Lock()
_metrics: SimpleNamespace | None = None


def _instruments() -> SimpleNamespace:
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import CollectorRegistry, Counter, Histogram

            registry = CollectorRegistry(auto_describe=True)
            _metrics = SimpleNamespace(
                registry=registry,
                polls=Counter("aggregator_polls", "Feed polls by outcome (ok, not-modified, error, skipped, disabled)",
                              ["status"], registry=registry),
                poll_seconds=Histogram("aggregator_fetch_duration_seconds",
                                       "Time to poll one feed: fetch, parse, extract, store",
                                       buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60, 120), registry=registry),
                new_articles=Counter("aggregator_articles_new", "Articles stored by this process's polls",
                                     registry=registry),
                extract_seconds=Histogram("aggregator_extraction_duration_seconds", "Time to extract one article page",
                                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20), registry=registry),
                extract_timeouts=Counter("aggregator_extraction_timeouts",
                                         "Pages whose extraction overran extract_timeout", registry=registry),
            )
        return _metrics


def registry():
    """The prometheus-client registry holding this process's measurements."""
    return _instruments().registry


def poll_done(status: str, seconds: float, new_articles: int) -> None:
    metrics = _instruments()
    metrics.polls.labels(status).inc()
    metrics.poll_seconds.observe(seconds)
    if new_articles:
        metrics.new_articles.inc(new_articles)


def extraction_took(seconds: float) -> None:
    _instruments().extract_seconds.observe(seconds)


def extraction_timed_out() -> None:
    _instruments().extract_timeouts.inc()
