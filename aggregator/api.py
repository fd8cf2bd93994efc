"""The library API that scripts import and the CLI wraps: ``Aggregator`` over one database and config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from . import query
from .config import DEFAULT_CONFIG_PATH, Config, Settings, load_config
from .dbfile import resolve_database
from .models import Article
from .search import StoryHits, search_stories
from .store import DaemonLock, open_database

if TYPE_CHECKING:  # the clustering engine (numpy, datasketch) is imported by the methods that run it
    from .cluster import Signal
    from .pipeline import PollResult


class ArticleNotFound(LookupError):
    """No stored article has the id (or ids) asked for."""

    def __init__(self, ids: list[int]):
        self.ids = ids
        super().__init__(f"no article with id {', '.join(map(str, ids))}")


@dataclass
class Explanation:
    a: Article
    b: Article
    signals: list[Signal]
    same_story: bool
    same_article: bool


class Aggregator:
    """One aggregator database (and, for polling, its feeds config).

    >>> agg = Aggregator(database="sqlite:///aggregator.db")
    >>> for story in agg.stories(min_sources=3):
    ...     print(story.source_count, story.headline)
    """

    def __init__(self, database: str | None = None, config: Config | str | Path | None = None, create: bool = True):
        """``create=False`` opens an existing aggregator database only (for reading), never a new empty one."""
        if isinstance(config, str | Path):
            config = load_config(config)
        elif config is None and Path(DEFAULT_CONFIG_PATH).exists() and not database:
            config = load_config(DEFAULT_CONFIG_PATH)
        self.config = config
        self.database_url = resolve_database(database, config)
        self.engine: Engine = open_database(self.database_url, create=create)

    @property
    def settings(self) -> Settings:
        return self.config.settings if self.config else Settings()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading ----------------------------------------------------------------------------------------

    def stories(
        self,
        since: datetime | None = None,
        min_sources: int = 1,
        search: str | None = None,
        limit: int | None = 100,
    ) -> list[query.StoryEntry]:
        """Story clusters ranked by distinct sources, then recency (by relevance with ``search``)."""
        return query.list_stories(self.engine, since=since, min_sources=min_sources, search=search, limit=limit)

    def search(
        self,
        q: str,
        limit: int = 20,
        offset: int = 0,
        since: datetime | None = None,
        min_sources: int = 1,
        sources: list[str] | None = None,
    ) -> list[StoryHits]:
        """Full-text search: matching stories, best first, each with its best matching articles and snippets.

        Words in any order, "quoted phrases" and prefix* words; raises :class:`aggregator.search.SearchError` (a
        ``ValueError``) with a one-line message for a query that cannot be searched.
        """
        return search_stories(self.engine, q, limit=limit, offset=offset, since=since,
                                     min_sources=min_sources, sources=sources)

    def story(self, story_id: int) -> query.StoryDetail | None:
        """One story with its articles and how each joined (a merged story's id leads to the survivor)."""
        return query.get_story(self.engine, story_id)

    def digest(self, day: date | None = None, min_sources: int = 1) -> query.Digest:
        """The day's stories (in the configured time zone), one entry per story."""
        return query.build_digest(self.engine, day, self.settings.timezone, min_sources)

    def feeds(self) -> list[query.FeedHealth]:
        return query.feed_health(self.engine)

    def explain(self, a: int, b: int) -> Explanation:
        """Why two stored articles are (or are not) in the same story: each signal and its threshold."""
        from .ingest import Ingestor, settings_for

        with Session(self.engine) as session:
            first, second = session.get(Article, a), session.get(Article, b)
        missing = [i for i, row in ((a, first), (b, second)) if row is None]
        if missing:
            raise ArticleNotFound(missing)
        ingestor = Ingestor(self.engine, settings_for(self.settings.story_window, self.settings.semantic_clustering))
        ingestor.reload()
        signals = ingestor.clusterer.compare(ingestor.features_of(first), ingestor.features_of(second))
        with Session(self.engine) as session:
            story = session.exec(select(Article).where(Article.story_id == first.story_id)).all()
        group = query.originals(story)  # copies share a story; chains and late originals count as one group
        same_article = group.get(first.id, first.id) == group.get(second.id, second.id)
        return Explanation(first, second, signals, first.story_id == second.story_id, same_article)

    # ---- writing ----------------------------------------------------------------------------------------

    def poll(self, names: list[str] | None = None, force: bool = False) -> list[PollResult]:
        """One pass over the configured feeds (all enabled ones, or those named); each result says whether the
        feed was polled (``ok``, ``not-modified``), failed (``error``) or not fetched (``skipped``: resting after
        failures, ``disabled``: paused), and how many articles it stored.

        Takes the same lock as the daemon: one writer per database, so a running daemon makes this refuse.
        """
        from .pipeline import poll_once

        if self.config is None:
            raise ValueError("polling needs a feeds config")
        with DaemonLock(self.engine, purpose="poll"):
            return poll_once(self.engine, self.config, names, force=force)
