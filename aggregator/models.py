"""The stored data: feeds, their fetch log, articles and story clusters (SQLModel tables).

Every time is stored as naive UTC, so SQLite and PostgreSQL compare them alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import NaiveDatetime
from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself, such as the schema version."""

    key: str = Field(primary_key=True)
    value: str


class Feed(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    url: str  # where the feed is fetched now (a permanent redirect moves it)
    config_url: str = ""  # the URL the config gave; when the config changes it, url follows
    title: str | None = None
    site_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_fetched_at: NaiveDatetime | None = None
    last_success_at: NaiveDatetime | None = None
    last_status: int | None = None
    last_new_entries: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    consecutive_errors: int = 0
    parse_errors: int = 0  # consecutive polls whose body was not a readable feed
    failing_since: NaiveDatetime | None = None
    retry_after: NaiveDatetime | None = None
    disabled_reason: str | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class FetchLog(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    started_at: NaiveDatetime = Field(default_factory=utcnow)
    duration_ms: int = 0
    status: int | None = None
    new_entries: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))


class Story(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = ""
    representative_id: int | None = None
    first_seen: NaiveDatetime = Field(default_factory=utcnow, index=True)
    last_updated: NaiveDatetime = Field(default_factory=utcnow, index=True)
    article_count: int = 0
    source_count: int = 0
    closed: bool = False
    merged_into: int | None = Field(default=None, foreign_key="story.id")


class Article(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source_key", "external_id", name="uq_article_identity"),
        Index("ix_article_story_time", "story_id", "published_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, foreign_key="feed.id", index=True)
    # The feed name for polled articles, the replayed id's namespace otherwise; with external_id it is
    # the article's identity, so seeing an entry twice never stores it twice.
    source_key: str
    external_id: str
    source: str = ""
    url: str | None = None
    canonical_url: str | None = Field(default=None, index=True)
    title: str = ""
    summary: str = Field(default="", sa_column=Column(Text))
    author: str | None = None
    text: str = Field(default="", sa_column=Column(Text))
    text_source: str = "feed"  # page | feed | title
    published_at: NaiveDatetime | None = Field(default=None, index=True)
    fetched_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    content_hash: str  # the engine keeps the open window's in memory; nothing looks an article up by it
    minhash: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    minhash_scheme: str | None = None
    shingle_count: int = 0
    # The content words of title and lead (space-separated) and the TF-IDF weight each had as the article
    # arrived (float32 values, in the same order): what it added to its story's vector, so a restart rebuilds
    # the vectors without reading the text again.
    terms: str | None = Field(default=None, sa_column=Column(Text))
    term_weights: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The names and figures of its lead (evidence.py), space-separated terms: a story rebuilt at a restart
    # knows the events its articles name, as the story it was did. NULL for articles stored before schema 5.
    evidence: str | None = Field(default=None, sa_column=Column(Text))
    story_id: int | None = Field(default=None, foreign_key="story.id", index=True)
    story_signal: str = ""
    story_score: float = 0.0
    duplicate_of: int | None = Field(default=None, foreign_key="article.id")
    duplicate_signal: str | None = None
    duplicate_score: float | None = None

    @property
    def when(self) -> datetime:
        return self.published_at or self.fetched_at


class PendingArticle(SQLModel, table=True):
    """An article a worker fetched and extracted, waiting for the story sequencer (PostgreSQL with workers only).

    ``id`` is the arrival order the sequencer follows; the unique identity makes a page extracted twice (a job
    redone after its worker died) a single row. The sequencer deletes a row in the transaction that stores it."""

    __tablename__ = "pending_article"
    __table_args__ = (UniqueConstraint("source_key", "external_id", name="uq_pending_article_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    worker: str = ""
    # the fields of ingest.Incoming
    source_key: str
    external_id: str
    source: str = ""
    title: str = ""
    text: str = Field(default="", sa_column=Column(Text))
    text_source: str = "feed"
    url: str | None = None
    canonical_url: str | None = None
    summary: str = Field(default="", sa_column=Column(Text))
    author: str | None = None
    published: NaiveDatetime | None = None
    feed_id: int | None = None
    fetched_at: NaiveDatetime | None = None
