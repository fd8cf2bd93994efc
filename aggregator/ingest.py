"""Store stage, write side: put one article in the database and in its story, with the engine's decision.

Used by polling and by replay alike, so what a replay measures is what the daemon does.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import bindparam, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .cluster import Clusterer, ClusterSettings, Decision, Features, StoredArticle
from .models import Article, Story, utcnow
from .store import sqlite_path

log = logging.getLogger(__name__)

SIGNAL_URL = "canonical-url"


@dataclass
class Incoming:
    """An article ready to be stored: identity, metadata and the chosen text."""

    source_key: str
    external_id: str
    source: str
    title: str
    text: str
    text_source: str = "feed"
    url: str | None = None
    canonical_url: str | None = None
    summary: str = ""
    author: str | None = None
    published: datetime | None = None  # naive UTC
    feed_id: int | None = None
    fetched_at: datetime | None = None


@dataclass
class Stored:
    article_id: int
    story_id: int
    decision: Decision


def settings_for(window_seconds: float, semantic: bool = False) -> ClusterSettings:
    return ClusterSettings(window=timedelta(seconds=window_seconds), semantic=semantic)


class Ingestor:
    """Keeps the clustering engine in step with the database it writes to."""

    def __init__(self, engine: Engine, settings: ClusterSettings | None = None, preferred_sources: list[str] = ()):
        self.engine = engine
        self.settings = settings or ClusterSettings()
        self.preferred_sources = [s.lower() for s in preferred_sources]
        self.clusterer = Clusterer(self.settings)
        self.loaded = 0
        self.last_article_id = 0  # the newest article the engine has seen stored (a snapshot's check)
        self._stories: dict[int, _StoryState] = {}  # the story rows this process wrote, as it left them
        self._prune_at = MAX_KEPT_STORIES
        self.cluster_seconds = 0.0  # time spent in the engine itself, for replay's speed figure
        self._insert_article = RowInsert(_ARTICLE, _ARTICLE_KEYS, engine.dialect)
        self._insert_story = RowInsert(_STORY, _STORY_KEYS, engine.dialect)

    # ---- start-up ---------------------------------------------------------------------------------------

    def reload(self, now: datetime | None = None, snapshot: bool = True) -> int:
        """Rebuild the engine from the stored articles of open stories in the window; returns how many.

        A snapshot saved beside the database (:meth:`save_snapshot`) is used instead when it was taken of the
        database as it is now (same newest article and story, same counts) by this code with these settings.
        Stored terms and signatures are reused (when the signature's scheme is the engine's), so no text is
        read or shingled again; articles stored without them are recomputed from their text.
        """
        self._stories = {}
        if snapshot and now is None and self._load_snapshot():
            return self.loaded
        self.clusterer = Clusterer(self.settings)
        with Session(self.engine) as session:
            self.last_article_id = session.exec(select(func.max(Article.id))).one() or 0
        when = func.coalesce(Article.published_at, Article.fetched_at)
        with Session(self.engine) as session:
            newest = session.exec(select(func.max(when))).one()
            end = max(filter(None, [now, newest]), default=None)
            if end is None:
                self.loaded = 0
                return 0
            rows = session.exec(
                select(
                    Article.id, Article.story_id, when, Article.content_hash, Article.terms, Article.term_weights,
                    Article.minhash, Article.minhash_scheme, Article.shingle_count, Article.evidence,
                )
                .join(Story, Story.id == Article.story_id)
                .where(Story.closed == False, when >= end - self.settings.window)  # noqa: E712
                .order_by(Article.id)  # the order they were ingested in, as the engine saw them
                .execution_options(yield_per=5000)
            )
            self.loaded = self.clusterer.load(self._stored(row) for row in rows)
        return self.loaded

    # ---- snapshot: a restart without reading every open article ------------------------------------------

    def _database_state(self) -> tuple:
        """What changes whenever an article is stored or a story merged or closed."""
        with Session(self.engine) as session:
            newest, articles = session.exec(select(func.max(Article.id), func.count(Article.id))).one()
            newest_story = session.exec(select(func.max(Story.id))).one()
            open_stories = session.exec(select(func.count(Story.id)).where(Story.closed == False)).one()  # noqa: E712
        return newest or 0, articles, newest_story or 0, open_stories

    def save_snapshot(self) -> bool:
        """Save the engine beside a SQLite database, for :meth:`reload` to start from; False when it is not
        saved (another database, or articles stored by another process that this engine has not seen)."""
        path = snapshot_path(self.engine)
        if path is None:
            return False
        state = self._database_state()
        if state[0] != self.last_article_id:
            log.info("engine snapshot not saved: the database holds articles this engine has not seen")
            return False
        header = {"format": SNAPSHOT_FORMAT, "code": _code_fingerprint(), "settings": self.settings, "state": state}
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as out:
            pickle.dump(header, out, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(self.clusterer, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)  # a reader never sees half a snapshot
        return True

    def _load_snapshot(self) -> bool:
        path = snapshot_path(self.engine)
        if path is None or not path.exists():
            return False
        try:
            with open(path, "rb") as handle:
                header = pickle.load(handle)
                current = (header.get("format") == SNAPSHOT_FORMAT and header.get("code") == _code_fingerprint()
                           and header.get("settings") == self.settings)
                if not current or header.get("state") != self._database_state():
                    log.info("engine snapshot %s is stale: rebuilding the engine from the database", path)
                    return False
                paused = gc.isenabled()
                gc.disable()  # as Clusterer.load: a million new objects, none of them garbage
                try:
                    clusterer = pickle.load(handle)
                finally:
                    if paused:
                        gc.enable()
        except Exception as exc:  # noqa: BLE001 - a damaged snapshot is only a slower start
            log.warning("engine snapshot %s not read (%s): rebuilding the engine from the database", path, exc)
            return False
        if not isinstance(clusterer, Clusterer):
            return False
        clusterer.expire()
        self.clusterer = clusterer
        self.loaded = len(clusterer.articles)
        self.last_article_id = header["state"][0]
        log.info("engine restored from its snapshot %s", path)
        return True

    def _stored(self, row) -> StoredArticle:
        article_id, story_id, moment, digest, terms, weights, signature, scheme, shingles, names = row
        names = frozenset(names.split()) if names else frozenset()
        current = scheme == self.settings.scheme or (signature is None and shingles == 0)
        if terms is not None and weights is not None and current:
            return StoredArticle(article_id, story_id, moment, digest, terms.split(),
                                 np.frombuffer(weights, dtype="<f4").tolist(), signature, shingles if signature else 0,
                                 names)
        # stored before weights were kept, or signed by another scheme or settings: recompute from the text, with
        # the IDF of the articles loaded so far (the engine is filled in arrival order)
        with Session(self.engine) as session:
            title, text = session.exec(select(Article.title, Article.text).where(Article.id == article_id)).one()
        feats = self.clusterer.features(title, text or "", moment)
        weights = self.clusterer.weights(feats)
        return StoredArticle(article_id, story_id, moment, digest, list(weights), list(weights.values()),
                             feats.signature_bytes(), feats.shingle_count, names or feats.evidence)

    def features_of(self, article: Article) -> Features:
        return self.clusterer.features(article.title, article.text, article.when, article.source)

    # ---- articles, a batch at a time ---------------------------------------------------------------------

    def ingest(self, session: Session, item: Incoming) -> Stored | None:
        """Store ``item`` in ``session`` (the caller commits); None when this entry is stored already.

        The engine is updated at once, so the caller must :meth:`reload` if the transaction then fails.
        """
        return self.ingest_batch(session, [item])[0]

    def ingest_batch(self, session: Session, items: list[Incoming],
                     each: Callable[[Stored | None], None] | None = None) -> list[Stored | None]:
        """Store ``items`` in order in ``session`` (the caller commits, once for them all); None for an entry
        stored already (or twice in ``items``). ``each`` is told every result as it is decided.

        Asks the database only what the engine cannot know: which entries and canonical URLs it holds (one
        query each for the batch) and the counts of a story this process has not written to yet. Every
        article is one INSERT, a new story another, and the stories' counts are written once at the end.
        The engine and the write side's story counts are updated at once, so the caller must :meth:`reload`
        if the transaction then fails.
        """
        connection = session.connection()
        known = self._known(connection, items)
        same_url = self._same_urls(connection, items)
        tick = time.perf_counter()
        self.clusterer.prepare((item.title, item.text) for item in items)  # the semantic signal's batch, if on
        self.cluster_seconds += time.perf_counter() - tick
        results: list[Stored | None] = []
        for item in items:
            identity = (item.source_key, item.external_id)
            result = None
            if identity not in known:
                known.add(identity)
                result = self._ingest_one(session, item, same_url)
            results.append(result)
            if each is not None:
                each(result)
        self._write_stories(connection)
        return results

    def _known(self, connection, items: list[Incoming]) -> set[tuple[str, str]]:
        """The identities among ``items`` that are stored already."""
        found: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for item in items:
            by_source.setdefault(item.source_key, []).append(item.external_id)
        for source_key, ids in by_source.items():
            for start in range(0, len(ids), 500):
                rows = connection.execute(
                    select(Article.external_id).where(Article.source_key == source_key,
                                                      Article.external_id.in_(ids[start : start + 500]))
                )
                found.update((source_key, external_id) for (external_id,) in rows)
        return found

    def _same_urls(self, connection, items: list[Incoming]) -> dict[str, list[_Seen]]:
        """The stored articles with the canonical URL of one of ``items``, by URL, first stored first."""
        urls = sorted({item.canonical_url for item in items if item.canonical_url})
        found: dict[str, list[_Seen]] = {}
        for start in range(0, len(urls), 500):
            rows = connection.execute(
                select(Article.canonical_url, Article.id, Article.story_id, Article.duplicate_of, Article.source_key)
                .where(Article.canonical_url.in_(urls[start : start + 500]))
                .order_by(Article.id)
            )
            for url, *seen in rows:
                found.setdefault(url, []).append(_Seen(*seen))
        return found

    def _ingest_one(self, session: Session, item: Incoming, same_url: dict[str, list[_Seen]]) -> Stored:
        connection = session.connection()
        fetched = item.fetched_at or utcnow()
        when = item.published or fetched
        decision, feats = self._decide(item, when, same_url)
        story_id = decision.story_id
        if story_id is None:
            story_id = self._new_story(connection, item.title, when)
        story_id = self._merge(session, story_id, decision.merge_story_ids)
        story = self._story(connection, story_id)
        weights = self.clusterer.weights(feats)  # what the article adds to its story; stored for restarts
        article_id = self._insert_article(connection, {
            "feed_id": item.feed_id,
            "source_key": item.source_key,
            "external_id": item.external_id,
            "source": item.source,
            "url": item.url,
            "canonical_url": item.canonical_url,
            "title": item.title,
            "summary": item.summary,
            "author": item.author,
            "text": item.text,
            "text_source": item.text_source,
            "published_at": item.published,
            "fetched_at": fetched,
            "content_hash": feats.content_hash,
            "minhash": feats.signature_bytes(),
            "minhash_scheme": self.settings.scheme if feats.minhash is not None else None,
            "shingle_count": feats.shingle_count,
            "terms": " ".join(weights),  # words hold no white space
            "term_weights": np.fromiter(weights.values(), dtype="<f4", count=len(weights)).tobytes(),
            "evidence": " ".join(sorted(feats.evidence)) or None,
            "story_id": story_id,
            "story_signal": decision.story_signal,
            "story_score": decision.story_score,
            "duplicate_of": decision.duplicate_of,
            "duplicate_signal": decision.duplicate_signal,
            "duplicate_score": decision.duplicate_score,
        })
        self._account(story, article_id, item, when)
        self.last_article_id = max(self.last_article_id, article_id)
        if item.canonical_url:
            same_url.setdefault(item.canonical_url, []).append(
                _Seen(article_id, story_id, decision.duplicate_of, item.source_key))
        tick = time.perf_counter()
        self.clusterer.add(article_id, feats, story_id, weights)
        self.cluster_seconds += time.perf_counter() - tick
        return Stored(article_id, story_id, decision)

    def _decide(self, item: Incoming, when: datetime, same_url: dict[str, list[_Seen]]) -> tuple[Decision, Features]:
        same = next((seen for seen in same_url.get(item.canonical_url or "", ())
                     if seen.source_key != item.source_key), None)
        tick = time.perf_counter()
        feats = self.clusterer.features(item.title, item.text, when, item.source)
        decision = None if same is not None and same.story_id is not None else self.clusterer.decide(feats)
        self.cluster_seconds += time.perf_counter() - tick
        if decision is None:
            indexed = self.clusterer.articles.get(same.article_id)  # its story may have merged since
            decision = Decision(
                duplicate_of=same.duplicate_of or same.article_id,
                duplicate_signal=SIGNAL_URL,
                duplicate_score=1.0,
                story_id=indexed.story_id if indexed is not None else same.story_id,
                story_signal=SIGNAL_URL,
                story_score=1.0,
            )
        return decision, feats

    # ---- stories: counts kept in memory, written once a batch --------------------------------------------

    def _new_story(self, connection, title: str, when: datetime) -> int:
        story_id = self._insert_story(connection, {
            "title": title, "representative_id": None, "first_seen": when, "last_updated": when,
            "article_count": 0, "source_count": 0, "closed": False, "merged_into": None,
        })
        self._stories[story_id] = _StoryState(story_id, title, None, None, when, when, 0, 0, set())
        return story_id

    def _story(self, connection, story_id: int) -> _StoryState:
        """The write side's state of a story: kept since this process last wrote to it, else read (two queries)."""
        state = self._stories.get(story_id)
        if state is not None:
            return state
        if len(self._stories) > self._prune_at:  # forget what left the engine's window
            self._stories = {sid: s for sid, s in self._stories.items() if sid in self.clusterer.stories or s.dirty}
            # a window holding more open stories than the limit must not rebuild this dict at every miss
            self._prune_at = max(MAX_KEPT_STORIES, 2 * len(self._stories))
        row = connection.execute(_STORY_ROW, {"sid": story_id}).one()
        title, rep_id, first, last, articles, sources, rep_source, published, fetched, length = row
        rep_rank = None
        if rep_id is not None and fetched is not None:
            rep_rank = self._rank(rep_source, published or fetched, length or 0, rep_id)
        names = set(connection.execute(_STORY_SOURCES, {"sid": story_id}).scalars())
        state = self._stories[story_id] = _StoryState(story_id, title, rep_id, rep_rank, first, last, articles,
                                                      sources, names)
        return state

    def _rank(self, source: str, when: datetime, length: int, article_id: int) -> tuple:
        return (source.lower() not in self.preferred_sources, when, -length, article_id)  # as rank() orders

    def _account(self, story: _StoryState, article_id: int, item: Incoming, when: datetime) -> None:
        """Count one more article in a story: counts, times and representative (written by _write_stories)."""
        story.article_count += 1
        if item.source not in story.sources:
            story.sources.add(item.source)
            story.source_count += 1
        story.first_seen = min(story.first_seen, when)
        story.last_updated = max(story.last_updated, when)
        candidate = self._rank(item.source, when, len(item.text or ""), article_id)
        if story.rep_rank is None or candidate < story.rep_rank:
            story.rep_rank, story.representative_id, story.title = candidate, article_id, item.title
        story.dirty = True

    def _write_stories(self, connection) -> None:
        """Write the counts of the stories this batch changed: one statement for them all."""
        dirty = [story for story in self._stories.values() if story.dirty]
        if not dirty:
            return
        connection.execute(_STORY_UPDATE, [
            {"sid": s.story_id, "title": s.title, "representative_id": s.representative_id,
             "first_seen": s.first_seen, "last_updated": s.last_updated, "article_count": s.article_count,
             "source_count": s.source_count}
            for s in dirty
        ])
        for story in dirty:
            story.dirty = False

    def _merge(self, session: Session, story_id: int, others: list[int]) -> int:
        """Fold bridged stories together; the oldest id survives and the others record where they went.

        The survivor's counts are the sum of theirs, kept in memory like any story's (what refresh_story
        would count again from every article of both)."""
        if not others:
            return story_id
        connection = session.connection()
        ids = sorted({story_id, *others})
        survivor = ids[0]
        target = self._story(connection, survivor)
        for other in ids[1:]:
            folded = self._story(connection, other)
            connection.execute(update(_ARTICLE).where(_ARTICLE.c.story_id == other).values(story_id=survivor))
            connection.execute(update(_STORY).where(_STORY.c.id == other)
                               .values(merged_into=survivor, closed=True, article_count=0, source_count=0))
            del self._stories[other]
            target.absorb(folded)
            self.clusterer.merge(survivor, other)
            log.info("story %d merged into story %d", other, survivor)
        return survivor


_ARTICLE = Article.__table__
_STORY = Story.__table__
# the columns an ingest writes (every one but the id, which the database gives)
_ARTICLE_KEYS = [column.key for column in _ARTICLE.columns if column.key != "id"]
_STORY_KEYS = [column.key for column in _STORY.columns if column.key != "id"]


class RowInsert:
    """``INSERT INTO table (keys) VALUES (...)`` of one row, returning its new id: the SQL compiled once and
    handed to the driver with the values SQLAlchemy would bind (its type processors), which a Core insert
    would compile, cache-key and process again for every article. Events still see each statement.

    Drivers with named parameters (PostgreSQL), or that give no row id, take the Core insert."""

    def __init__(self, table, keys: list[str], dialect) -> None:
        self.table = table
        compiled = table.insert().compile(dialect=dialect, column_keys=keys)
        order = compiled.positiontup
        self.lean = dialect.name == "sqlite" and order is not None and set(order) == set(keys)
        self.sql = compiled.string
        self.order = list(order or ())
        processors = {key: table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys}
        self.processors = [processors[key] for key in self.order]

    def __call__(self, connection, values: dict) -> int:
        if not self.lean:
            return connection.execute(self.table.insert(), values).inserted_primary_key[0]
        params = tuple(value if process is None else process(value)
                       for value, process in zip(map(values.__getitem__, self.order), self.processors, strict=True))
        return connection.exec_driver_sql(self.sql, params).lastrowid


_STORY_UPDATE = (
    update(_STORY).where(_STORY.c.id == bindparam("sid"))
    .values(title=bindparam("title"), representative_id=bindparam("representative_id"),
            first_seen=bindparam("first_seen"), last_updated=bindparam("last_updated"),
            article_count=bindparam("article_count"), source_count=bindparam("source_count"))
)
_REP = _ARTICLE.alias("rep")
_STORY_ROW = (
    select(_STORY.c.title, _STORY.c.representative_id, _STORY.c.first_seen, _STORY.c.last_updated,
           _STORY.c.article_count, _STORY.c.source_count,
           _REP.c.source, _REP.c.published_at, _REP.c.fetched_at, func.length(_REP.c.text))
    .select_from(_STORY.outerjoin(_REP, _REP.c.id == _STORY.c.representative_id))
    .where(_STORY.c.id == bindparam("sid"))
)
_STORY_SOURCES = select(_ARTICLE.c.source).where(_ARTICLE.c.story_id == bindparam("sid")).distinct()
MAX_KEPT_STORIES = 50_000  # story states kept between batches before those out of the window are dropped


class _Seen(NamedTuple):
    """A stored article with a canonical URL, as the same-URL check needs it."""

    article_id: int
    story_id: int | None
    duplicate_of: int | None
    source_key: str


@dataclass(slots=True)
class _StoryState:
    """A story's row as the write side last left it, and the outlets it has, so the next article of the story
    needs no query: what asking the database for the story, its representative and its sources cost before."""

    story_id: int
    title: str
    representative_id: int | None
    rep_rank: tuple | None  # rank() of the representative
    first_seen: datetime
    last_updated: datetime
    article_count: int
    source_count: int
    sources: set[str]
    dirty: bool = False

    def absorb(self, other: _StoryState) -> None:
        """Count the articles of ``other``, a story merged into this one."""
        self.article_count += other.article_count
        self.sources |= other.sources
        self.source_count = len(self.sources)
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_updated = max(self.last_updated, other.last_updated)
        if other.rep_rank is not None and (self.rep_rank is None or other.rep_rank < self.rep_rank):
            self.rep_rank, self.representative_id, self.title = other.rep_rank, other.representative_id, other.title
        self.dirty = True


SNAPSHOT_FORMAT = 1
SNAPSHOT_SUFFIX = ".engine"


def snapshot_path(engine: Engine) -> Path | None:
    """Where the engine's snapshot of a SQLite database is kept: beside it (None for other databases)."""
    database = sqlite_path(engine.url)
    return database.with_name(database.name + SNAPSHOT_SUFFIX) if database else None


@cache
def _code_fingerprint() -> str:
    """A snapshot is the engine's objects as they were: only the code that made them can read them back."""
    digest = hashlib.sha1()
    for module in ("cluster", "evidence", "explain", "lsh", "neardup", "semantic", "text", "vectors"):
        digest.update(Path(__file__).with_name(f"{module}.py").read_bytes())  # read, not imported: no model loads
    return digest.hexdigest()


def rank(article: Article, preferred_sources: list[str]) -> tuple:
    """Sort key of the article that stands for its story: a preferred source, else the earliest (the original
    over its copies, whichever was fetched first), else the longest text."""
    preferred = article.source.lower() in preferred_sources
    return (not preferred, article.when, -len(article.text or ""), article.id)


def refresh_story(session: Session, story_id: int, preferred_sources: list[str] = ()) -> Story:
    """Recompute a story's counts, times, headline and representative from its articles."""
    story = session.get(Story, story_id)
    articles = session.exec(select(Article).where(Article.story_id == story_id)).all()
    if not articles:
        return story
    rep = min(articles, key=lambda a: rank(a, list(preferred_sources)))
    story.representative_id = rep.id
    story.title = rep.title
    story.article_count = len(articles)
    story.source_count = len({a.source for a in articles})
    story.first_seen = min(a.when for a in articles)
    story.last_updated = max(a.when for a in articles)
    session.add(story)
    return story
