"""Query stage: the read API that the CLI, the digest and users' scripts share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass
class StorySource:
    """One article of a story, with the other outlets that carried a copy of it folded in."""

    article_id: int
    source: str
    title: str
    url: str | None
    published: datetime | None  # UTC
    copies: list[StorySource] = field(default_factory=list)


@dataclass
class StoryEntry:
    """One story cluster, as the digest and ``aggregator stories`` show it."""

    id: int
    headline: str
    url: str | None
    lead: str
    source_count: int
    article_count: int
    first_seen: datetime  # UTC
    last_updated: datetime  # UTC
    sources: list[StorySource] = field(default_factory=list)


@dataclass
class Digest:
    day: date
    generated_at: datetime  # UTC
    stories: list[StoryEntry] = field(default_factory=list)
