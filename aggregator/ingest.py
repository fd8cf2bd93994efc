"""Store stage, write side: put one article in the database and in its story, with the engine's decision.

Used by polling and by replay alike, so what a replay measures is what the daemon does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .cluster import Clusterer, ClusterSettings, Decision, Features, StoredArticle
from .models import Article, Story, utcnow

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


def settings_for(window_seconds: float) -> ClusterSettings:
    return ClusterSettings(window=timedelta(seconds=window_seconds))


class Ingestor:
    """Keeps the clustering engine in step with the database it writes to."""

    def __init__(self, engine: Engine, settings: ClusterSettings | None = None, preferred_sources: list[str] = ()):
        self.engine = engine
        self.settings = settings or ClusterSettings()
        self.preferred_sources = [s.lower() for s in preferred_sources]
        self.clusterer = Clusterer(self.settings)
        self.loaded = 0
        self.cluster_seconds = 0.0  # time spent in the engine itself, for replay's speed figure

    # ---- start-up ---------------------------------------------------------------------------------------

    def reload(self, now: datetime | None = None) -> int:
        """Rebuild the engine from the stored articles of open stories in the window; returns how many.

        Stored terms and signatures are reused (when the signature's scheme is the engine's), so no text is
        read or shingled again; articles stored without them are recomputed from their text.
        """
        self.clusterer = Clusterer(self.settings)
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
                    Article.minhash, Article.minhash_scheme, Article.shingle_count,
                )
                .join(Story, Story.id == Article.story_id)
                .where(Story.closed == False, when >= end - self.settings.window)  # noqa: E712
                .order_by(Article.id)  # the order they were ingested in, as the engine saw them
                .execution_options(yield_per=5000)
            )
            self.loaded = self.clusterer.load(self._stored(row) for row in rows)
        return self.loaded

    def _stored(self, row) -> StoredArticle:
        article_id, story_id, moment, digest, terms, weights, signature, scheme, shingles = row
        current = scheme == self.settings.scheme or (signature is None and shingles == 0)
        if terms is not None and weights is not None and current:
            return StoredArticle(article_id, story_id, moment, digest, terms.split(),
                                 np.frombuffer(weights, dtype="<f4").tolist(), signature, shingles if signature else 0)
        # stored before weights were kept, or signed by another scheme or settings: recompute from the text, with
        # the IDF of the articles loaded so far (the engine is filled in arrival order)
        with Session(self.engine) as session:
            title, text = session.exec(select(Article.title, Article.text).where(Article.id == article_id)).one()
        feats = self.clusterer.features(title, text or "", moment)
        weights = self.clusterer.weights(feats)
        return StoredArticle(article_id, story_id, moment, digest, list(weights), list(weights.values()),
                             feats.signature_bytes(), feats.shingle_count)

    def features_of(self, article: Article) -> Features:
        return self.clusterer.features(article.title, article.text, article.when, article.source)

    # ---- one article ------------------------------------------------------------------------------------

    def exists(self, session: Session, source_key: str, external_id: str) -> bool:
        found = session.exec(
            select(Article.id).where(Article.source_key == source_key, Article.external_id == external_id)
        ).first()
        return found is not None

    def _same_url(self, session: Session, item: Incoming) -> Article | None:
        if not item.canonical_url:
            return None
        return session.exec(
            select(Article).where(Article.canonical_url == item.canonical_url, Article.source_key != item.source_key)
        ).first()

    def ingest(self, session: Session, item: Incoming) -> Stored | None:
        """Store ``item`` in ``session`` (the caller commits); None when this entry is stored already.

        The engine is updated at once, so the caller must :meth:`reload` if the transaction then fails.
        """
        if self.exists(session, item.source_key, item.external_id):
            return None
        fetched = item.fetched_at or utcnow()
        when = item.published or fetched
        decision, feats = self._decide(session, item, when)
        story_id = decision.story_id
        if story_id is None:
            story = Story(title=item.title, first_seen=when, last_updated=when)
            session.add(story)
            session.flush()
            story_id = story.id
        story_id = self._merge(session, story_id, decision.merge_story_ids)
        story = session.get(Story, story_id)
        weights = self.clusterer.weights(feats)  # what the article adds to its story; stored for restarts
        new_source = story.article_count == 0 or not session.exec(
            select(Article.id).where(Article.story_id == story_id, Article.source == item.source).limit(1)
        ).first()
        article = Article(
            feed_id=item.feed_id,
            source_key=item.source_key,
            external_id=item.external_id,
            source=item.source,
            url=item.url,
            canonical_url=item.canonical_url,
            title=item.title,
            summary=item.summary,
            author=item.author,
            text=item.text,
            text_source=item.text_source,
            published_at=item.published,
            fetched_at=fetched,
            content_hash=feats.content_hash,
            minhash=feats.signature_bytes(),
            minhash_scheme=self.settings.scheme if feats.minhash is not None else None,
            shingle_count=feats.shingle_count,
            terms=" ".join(weights),  # words hold no white space
            term_weights=np.fromiter(weights.values(), dtype="<f4", count=len(weights)).tobytes(),
            story_id=story_id,
            story_signal=decision.story_signal,
            story_score=decision.story_score,
            duplicate_of=decision.duplicate_of,
            duplicate_signal=decision.duplicate_signal,
            duplicate_score=decision.duplicate_score,
        )
        session.add(article)
        session.flush()
        self._account(session, story, article, new_source)
        tick = time.perf_counter()
        self.clusterer.add(article.id, feats, story_id, weights)
        self.cluster_seconds += time.perf_counter() - tick
        return Stored(article.id, story_id, decision)

    def _decide(self, session: Session, item: Incoming, when: datetime) -> tuple[Decision, Features]:
        same = self._same_url(session, item)
        tick = time.perf_counter()
        feats = self.clusterer.features(item.title, item.text, when, item.source)
        decision = None if same is not None and same.story_id is not None else self.clusterer.decide(feats)
        self.cluster_seconds += time.perf_counter() - tick
        if decision is None:
            original = same.duplicate_of or same.id
            decision = Decision(
                duplicate_of=original,
                duplicate_signal=SIGNAL_URL,
                duplicate_score=1.0,
                story_id=same.story_id,
                story_signal=SIGNAL_URL,
                story_score=1.0,
            )
        return decision, feats

    def _account(self, session: Session, story: Story, article: Article, new_source: bool) -> None:
        """Update a story's counts, times and representative for one more article."""
        story.article_count += 1
        story.source_count += int(new_source)
        story.first_seen = min(story.first_seen, article.when)
        story.last_updated = max(story.last_updated, article.when)
        current = session.get(Article, story.representative_id) if story.representative_id else None
        if current is None or rank(article, self.preferred_sources) < rank(current, self.preferred_sources):
            story.representative_id = article.id
            story.title = article.title
        session.add(story)

    def _merge(self, session: Session, story_id: int, others: list[int]) -> int:
        """Fold bridged stories together; the oldest id survives and the others record where they went."""
        if not others:
            return story_id
        ids = sorted({story_id, *others})
        survivor = ids[0]
        for other in ids[1:]:
            session.exec(update(Article).where(Article.story_id == other).values(story_id=survivor))
            merged = session.get(Story, other)
            if merged is not None:
                merged.merged_into = survivor
                merged.closed = True
                merged.article_count = merged.source_count = 0
                session.add(merged)
            self.clusterer.merge(survivor, other)
            log.info("story %d merged into story %d", other, survivor)
        session.flush()
        refresh_story(session, survivor, self.preferred_sources)
        return survivor


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
