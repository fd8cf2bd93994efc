"""The same-story engine's index of the open window: the stories' centroids and their term postings, the
articles' entries and document frequencies, and how they change as articles arrive, stories merge and the window
moves on (``StoryIndex``, part of :class:`aggregator.cluster.Clusterer`, whose decisions read it).

- add() indexes one article after its story is stored; load() indexes stored articles at a restart in one
  pass (their stored terms, weights and signatures) and builds the per-story upkeep and the LSH index once.
- merge() folds one story into another.
- expire() keeps memory bounded: it drops every per-article and per-story entry of what left the window, terms
  of a long-running story that no open article uses any more, and rewrites the LSH index after churn.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import math
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .vectors import vector_dot, vector_norm

if TYPE_CHECKING:
    from .cluster import Features

# Pairs of stories whose centroids' dot product is kept (StoryIndex.centroid_dot): some 16 MiB at most.
_CENTROID_DOTS = 50_000


class StoredArticle(NamedTuple):
    """What a restart reads back of an article: no text; its terms, the weights they had and its signature."""

    article_id: int
    story_id: int
    when: datetime
    content_hash: str
    terms: list[str]
    weights: list[float]  # one a term, in the same order
    signature: bytes | None
    shingle_count: int
    evidence: frozenset[str] = frozenset()  # the names and figures of its lead, as stored


@dataclass(slots=True)
class _Story:
    vector: dict[str, float]  # term -> summed TF-IDF weight of its articles (IDF as of each article's arrival)
    norm: float
    first: datetime
    last: datetime
    articles: int = 0
    last_seq: int = 0  # arrival number of its latest article
    members: list[int] = field(default_factory=list)
    top: list[str] = field(default_factory=list)  # heaviest terms, heaviest first
    # term -> how many of its articles in the window use it; a term none of them uses any more leaves the
    # centroid, so a long-running story's vector stays the size of its open coverage. None: not counted yet
    # (a restart leaves it to the first time it is needed, see StoryIndex._term_counts)
    counts: Counter | None = field(default_factory=Counter)
    # the names and figures its articles name (evidence.py), rebuilt at a restart from what each article stored
    # (none for articles stored before schema 5: such a story keeps no article out until new ones name enough)
    evidence: set[str] = field(default_factory=set)
    # Which state of the centroid this is, unique across stories (StoryIndex._changed), the one before it, and
    # the weights that made the change when it was an article's: a dot product with another centroid taken at
    # the state before is brought up to date with the article's few terms instead of both whole centroids.
    stamp: int = 0
    stamp_before: int = -1
    last_added: dict[str, float] | None = None


@dataclass(slots=True)
class _Article:
    story_id: int
    when: datetime
    shingle_count: int
    content_hash: str
    terms: tuple[str, ...] = ()  # counted in the document frequencies while the article is in the window


def _heaviest(vector: dict[str, float], count: int) -> list[str]:
    """The ``count`` terms of ``vector`` with the largest weights, heaviest first."""
    return [term for term, _ in sorted(vector.items(), key=itemgetter(1), reverse=True)[:count]]


class StoryIndex:
    """Index upkeep of :class:`aggregator.cluster.Clusterer` (its settings, LSH index and semantic vectors are
    set there)."""

    def _init_index(self, active_arrivals: int) -> None:
        """An empty window."""
        self.articles: dict[int, _Article] = {}
        self.by_hash: dict[str, int] = {}
        self.stories: dict[int, _Story] = {}
        # term -> open stories using it, least recently updated first (a dict keeps that order), each with its
        # centroid (the story's vector itself, so a scan reads the term's weight without looking the story up)
        self.postings: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
        self.df: Counter = Counter()
        self.documents = 0
        self.seq = 0  # articles added so far: the arrival clock
        self.clock = datetime.min  # the newest article time seen: the window ends here
        # the clock as of each of the last active_arrivals arrivals: tells a timed stream from an untimed one
        self._recent_clock: deque[datetime] = deque(maxlen=active_arrivals)
        self._stamps = itertools.count(1)
        # (story, other story) -> (dot product of their centroids, the stamp of each then): see centroid_dot
        self._centroid_dots: dict[tuple[int, int], tuple[float, int, int]] = {}

    def add(self, article_id: int, feats: Features, story_id: int, weights: dict[str, float] | None = None) -> None:
        """Index an article that the store has put in ``story_id`` (``weights``: its :meth:`weights`, if known)."""
        if article_id in self.articles:
            return
        weights = self.weights(feats) if weights is None else weights
        self._count_article(article_id, story_id, feats.when, feats.content_hash, tuple(weights), feats.shingle_count)
        if feats.minhash is not None:
            self.index.insert(article_id, feats.signature)
        self._add_to_story(story_id, weights, feats.when)
        self._add_member(story_id, article_id)
        self.stories[story_id].evidence.update(feats.evidence)
        if self.semantic is not None:
            self.semantic.add(article_id, story_id, feats.vector)

    def load(self, stored: Iterable[StoredArticle]) -> int:
        """Index stored articles, given in arrival order, at once; returns how many were new.

        The result is what :meth:`add` one by one gave, with the weights each article got when it arrived;
        but each story's norm, heaviest terms and postings are computed once, and the LSH index is built in
        one sort.
        """
        paused = gc.isenabled()
        gc.disable()  # millions of new long-lived objects, none of them garbage: full collections would only
        try:  # traverse them again and again (a fifth of the time at 20,000 articles, more the more there are)
            return self._load(stored)
        finally:
            if paused:
                gc.enable()

    def _load(self, stored: Iterable[StoredArticle]) -> int:
        fresh = not self.stories
        touched: set[int] = set()
        keys: list[int] = []
        signatures: list[bytes] = []
        loaded = 0
        for item in stored:
            if item.article_id in self.articles:
                continue
            loaded += 1
            terms = tuple(item.terms)
            # the document frequencies as of each arrival, for an article whose weights must be computed again
            self._count_article(item.article_id, item.story_id, item.when, item.content_hash, terms,
                                item.shingle_count)
            if item.signature is not None:
                keys.append(item.article_id)
                signatures.append(item.signature)
            story = self.stories.get(item.story_id)
            if story is None:
                story = self.stories[item.story_id] = _Story(vector={}, norm=0.0, first=item.when, last=item.when,
                                                             counts=None)
            vector = story.vector
            get = vector.get
            for term, weight in zip(terms, item.weights, strict=True):
                vector[term] = get(term, 0.0) + weight
            story.first, story.last = min(story.first, item.when), max(story.last, item.when)
            story.last_seq = self.seq
            story.members.append(item.article_id)
            story.articles += 1
            story.evidence.update(item.evidence)
            if story.counts is not None:
                story.counts.update(terms)
            touched.add(item.story_id)
        postings = self.postings
        for story_id in sorted(touched, key=lambda sid: self.stories[sid].last_seq):
            story = self.stories[story_id]
            vector = story.vector
            story.norm = vector_norm(vector)
            story.top = _heaviest(vector, self.settings.merge_terms)
            self._changed(story)
            for term in vector:
                posting = postings[term]
                if not fresh:
                    posting.pop(story_id, None)
                posting[story_id] = vector  # least recently updated first, as add() leaves them
        if signatures:
            matrix = np.frombuffer(b"".join(signatures), dtype="<u4").astype(np.uint32).reshape(len(keys), -1)
            if len(self.index):
                for key, row in zip(keys, matrix, strict=True):
                    self.index.insert(key, row)
            else:
                self.index.build(keys, matrix)
        return loaded

    def _count_article(self, article_id: int, story_id: int, when: datetime, digest: str,
                       article_terms: tuple[str, ...], shingle_count: int) -> None:
        """Count an article in the window: the clock, the document frequencies, its own entry."""
        self.clock = max(self.clock, when)
        self.articles[article_id] = _Article(story_id, when, shingle_count, digest, article_terms)
        self.by_hash.setdefault(digest, article_id)
        self.documents += 1
        self.df.update(article_terms)
        self.seq += 1
        self._recent_clock.append(self.clock)

    def _add_member(self, story_id: int, article_id: int) -> None:
        story = self.stories[story_id]
        counts = self._term_counts(story)
        story.members.append(article_id)
        story.articles += 1
        counts.update(self.articles[article_id].terms)

    def _term_counts(self, story: _Story) -> Counter:
        """The story's term -> articles using it, counted from its members the first time it is needed."""
        if story.counts is None:
            counts = story.counts = Counter()
            for article_id in story.members:
                article = self.articles.get(article_id)
                if article is not None:
                    counts.update(article.terms)
        return story.counts

    def _add_to_story(self, story_id: int, weights: dict[str, float], when: datetime) -> None:
        story = self.stories.get(story_id)
        if story is None:
            story = self.stories[story_id] = _Story(vector={}, norm=0.0, first=when, last=when)
        vector = story.vector
        squares = story.norm * story.norm if vector else 0.0
        for term, weight in weights.items():
            old = vector.get(term, 0.0)
            vector[term] = old + weight
            squares += (old + weight) ** 2 - old * old
            posting = self.postings[term]
            posting.pop(story_id, None)
            posting[story_id] = vector  # most recently updated last
        story.norm = math.sqrt(max(squares, 0.0)) or 1.0
        # weights only grow, so the new heaviest terms are among the old heaviest and the ones just added
        story.top = heapq.nlargest(self.settings.merge_terms, dict.fromkeys([*story.top, *weights]),
                                   key=vector.__getitem__)  # a set's order would break ties by the hash seed
        story.first, story.last = min(story.first, when), max(story.last, when)
        story.last_seq = self.seq
        self._changed(story, weights)

    def _changed(self, story: _Story, added: dict[str, float] | None = None) -> None:
        """Stamp a story whose centroid changed (by an article's ``added`` weights, else in any other way)."""
        story.stamp_before, story.stamp, story.last_added = story.stamp, next(self._stamps), added

    def centroid_dot(self, story_id: int, other_id: int) -> float:
        """The dot product of two open stories' centroids.

        A story that keeps getting articles is compared with the same few stories again and again (the ones it
        may converge with, see Clusterer._converging), each time with one article more; the product taken last
        time is kept and brought up to date with that article's weights, when the other story did not change.
        The sums differ from a product taken afresh by rounding alone.
        """
        story, other = self.stories[story_id], self.stories[other_id]
        key = (story_id, other_id)
        cached = self._centroid_dots.get(key)
        if cached is not None and cached[2] == other.stamp:
            dot, stamp, _ = cached
            if stamp == story.stamp:
                return dot
            if stamp == story.stamp_before and story.last_added is not None:
                dot += vector_dot(story.last_added, other.vector)
                self._centroid_dots[key] = (dot, story.stamp, other.stamp)
                return dot
        if len(self._centroid_dots) >= _CENTROID_DOTS:
            self._centroid_dots.clear()  # pairs of stories long closed or merged, and the few that still recur
        dot = vector_dot(story.vector, other.vector)
        self._centroid_dots[key] = (dot, story.stamp, other.stamp)
        return dot

    def merge(self, into: int, other: int) -> None:
        """Fold story ``other`` into story ``into``."""
        source = self.stories.pop(other, None)
        if source is None:
            return
        if self.semantic is not None:
            self.semantic.merge(into, other)
        for term in source.vector:
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(other, None)
        target = self.stories.get(into)
        if target is None:
            self.stories[into] = source
            target = source
            for term in source.vector:
                self.postings[term][into] = source.vector
            self._changed(source)  # now under another id
        else:
            last_seq = max(target.last_seq, source.last_seq)
            self._add_to_story(into, source.vector, source.last)
            target.norm = vector_norm(target.vector)
            target.top = _heaviest(target.vector, self.settings.merge_terms)
            target.first = min(target.first, source.first)
            target.last_seq = last_seq
            target.articles += source.articles
            target.members.extend(source.members)
            if target.counts is not None:  # else it is counted from all its members, these included, when needed
                target.counts.update(self._term_counts(source))
            target.evidence |= source.evidence
            self._changed(target)
        for article_id in source.members:
            article = self.articles.get(article_id)
            if article is not None:
                article.story_id = into

    def expire(self) -> list[int]:
        """Drop stories and articles that left the window; returns the closed story ids."""
        closed = [sid for sid, story in self.stories.items() if not self._open(story.last)]
        for story_id in closed:
            story = self.stories.pop(story_id)
            if self.semantic is not None:
                self.semantic.close(story_id)
            for term in story.vector:
                posting = self.postings.get(term)
                if posting is not None:
                    posting.pop(story_id, None)
                    if not posting:
                        del self.postings[term]
        stale = [aid for aid, art in self.articles.items() if not self._open(art.when)]
        for article_id in stale:  # counted while all their articles are still there
            story = self.stories.get(self.articles[article_id].story_id)
            if story is not None:
                self._term_counts(story)
        thinned: set[int] = set()
        for article_id in stale:
            article = self.articles.pop(article_id)
            if self.semantic is not None:
                self.semantic.forget(article_id, article.story_id)
            if self.by_hash.get(article.content_hash) == article_id:
                del self.by_hash[article.content_hash]
            self.index.remove(article_id)  # rewritten without the removed entries once they outnumber the rest
            self.documents -= 1
            for term in article.terms:
                left = self.df[term] - 1
                if left > 0:
                    self.df[term] = left
                else:
                    del self.df[term]
            story = self.stories.get(article.story_id)
            if story is not None:
                thinned.add(article.story_id)
                self._forget_terms(article.story_id, story, article.terms)
        for story_id in thinned:
            story = self.stories[story_id]
            story.members = [aid for aid in story.members if aid in self.articles]
            story.norm = vector_norm(story.vector)
            story.top = _heaviest(story.vector, self.settings.merge_terms)
            self._changed(story)
        return closed

    def _forget_terms(self, story_id: int, story: _Story, article_terms: tuple[str, ...]) -> None:
        """An article of an open story left the window: the terms no other article of the story uses go."""
        counts = story.counts  # counted before the article left (expire)
        for term in article_terms:
            left = counts.get(term, 0) - 1
            if left > 0:
                counts[term] = left
                continue
            counts.pop(term, None)
            story.vector.pop(term, None)
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(story_id, None)
                if not posting:
                    del self.postings[term]
