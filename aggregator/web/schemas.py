"""The HTTP API's JSON: the query dataclasses with cleaned strings, http(s) links only and ISO 8601 UTC times.

The pydantic models document the shapes in ``/openapi.json``; the ``*_dict`` functions build the values.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..digest import clean_text, iso_time, safe_url
from ..digest import story_to_dict as story_dict
from ..query import ArticleView, FeedHealth, StoryDetail


class Source(BaseModel):
    article_id: int
    source: str
    title: str
    url: str | None
    published: str | None
    copies: list[Source] = []


class Story(BaseModel):
    id: int
    headline: str
    url: str | None
    lead: str
    source_count: int
    article_count: int
    first_seen: str | None
    last_updated: str | None
    sources: list[Source]


class StoryPage(BaseModel):
    stories: list[Story]
    limit: int
    offset: int
    next_offset: int | None


class ArticleOut(BaseModel):
    id: int
    source: str
    title: str
    url: str | None
    published: str | None
    fetched: str | None
    text_source: str
    joined_by: str
    score: float
    duplicate_of: int | None
    duplicate_signal: str | None
    duplicate_score: float | None


class StoryDetailOut(BaseModel):
    story: Story
    articles: list[ArticleOut]
    merged_from: list[int]


class DigestOut(BaseModel):
    date: str
    generated_at: str | None
    stories: list[Story]


class FeedOut(BaseModel):
    name: str
    url: str | None
    title: str | None
    last_fetched: str | None
    last_status: int | None
    new_entries: int
    consecutive_errors: int
    last_error: str | None
    resting_until: str | None
    disabled: str | None
    articles: int


class Segment(BaseModel):
    text: str
    highlight: bool


class Hit(BaseModel):
    article_id: int
    story_id: int
    title: str
    source: str
    url: str | None
    published: str | None
    snippet: list[Segment]
    rank: float


class StoryHitsOut(BaseModel):
    story: Story
    hits: list[Hit]
    rank: float


class SearchOut(BaseModel):
    query: str
    results: list[StoryHitsOut]
    limit: int
    offset: int
    next_offset: int | None


class Health(BaseModel):
    status: str
    database: str
    last_poll: str | None


class Problem(BaseModel):
    detail: str


def article_dict(article: ArticleView) -> dict:
    return {
        "id": article.id, "source": clean_text(article.source), "title": clean_text(article.title),
        "url": safe_url(article.url), "published": iso_time(article.published), "fetched": iso_time(article.fetched),
        "text_source": article.text_source, "joined_by": article.joined_by, "score": article.score,
        "duplicate_of": article.duplicate_of, "duplicate_signal": article.duplicate_signal,
        "duplicate_score": article.duplicate_score,
    }


def detail_dict(detail: StoryDetail) -> dict:
    return {
        "story": story_dict(detail.story), "articles": [article_dict(a) for a in detail.articles],
        "merged_from": list(detail.merged_from),
    }


def feed_dict(health: FeedHealth) -> dict:
    return {
        "name": clean_text(health.name), "url": safe_url(health.url), "title": clean_text(health.title) or None,
        "last_fetched": iso_time(health.last_fetched), "last_status": health.last_status,
        "new_entries": health.new_entries, "consecutive_errors": health.consecutive_errors,
        "last_error": clean_text(health.last_error) or None, "resting_until": iso_time(health.resting_until),
        "disabled": clean_text(health.disabled) or None, "articles": health.articles,
    }


def hits_dict(result) -> dict:
    """A ``search.StoryHits`` as JSON."""
    return {
        "story": story_dict(result.story),
        "hits": [
            {
                "article_id": hit.article_id, "story_id": hit.story_id, "title": clean_text(hit.title),
                "source": clean_text(hit.source), "url": safe_url(hit.url), "published": iso_time(hit.published),
                "snippet": [{"text": clean_text(text), "highlight": bool(mark)} for text, mark in hit.snippet],
                "rank": hit.rank,
            }
            for hit in result.hits
        ],
        "rank": result.rank,
    }
