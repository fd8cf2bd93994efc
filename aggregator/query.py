"""Query stage: the read API that the CLI, the digest and users' scripts share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .extract import lead_sentence
from .models import Article, Feed, Story

if TYPE_CHECKING:
    from .evidence import Makeup


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
    timezone: str = "UTC"  # the zone of ``day``, and the one the renderers show times in


# cluster.SIGNAL_NEW, written out: reading stories must not load the engine (numpy); a test keeps them equal
STARTED_STORY = "new-story"


def how_joined(signal: str, score: float) -> str:
    """How an article came into its story, for a person: the signal and its score, or "started a story" (the
    story itself, or one merged into it later: there is no score to show)."""
    return "started a story" if signal == STARTED_STORY else f"{signal} {score:.2f}"


@dataclass
class ArticleView:
    """One article of a story with how it joined."""

    id: int
    source: str
    title: str
    url: str | None
    published: datetime | None
    fetched: datetime
    text_source: str
    joined_by: str  # the signal that put it in the story
    score: float
    duplicate_of: int | None  # the original of its group of copies (the earliest); None for the original itself
    duplicate_signal: str | None  # how it matched ``matched_with`` when it arrived
    duplicate_score: float | None
    matched_with: int | None = None  # the article it was found to copy when it arrived, as stored

    @property
    def started_story(self) -> bool:
        """Whether it joined no story but started one (this one, or one merged into it later)."""
        return self.joined_by == STARTED_STORY

    @property
    def how_joined(self) -> str:
        """How it came into the story, for a person (see :func:`how_joined`)."""
        return how_joined(self.joined_by, self.score)


@dataclass
class StoryDetail:
    story: StoryEntry
    articles: list[ArticleView]
    merged_from: list[int] = field(default_factory=list)
    makeup: Makeup | None = None  # the names and words its articles share, and their time apart


@dataclass
class FeedHealth:
    name: str
    url: str
    title: str | None
    last_fetched: datetime | None
    last_status: int | None
    new_entries: int
    consecutive_errors: int
    last_error: str | None
    resting_until: datetime | None
    disabled: str | None
    articles: int

    def state(self, enabled: bool = True, now: datetime | None = None) -> str:
        """One word for the feed list: ``off`` (switched off in the config: the user's choice comes first),
        ``paused`` (stopped after failing, until resumed), ``resting`` (backing off), ``failing`` or ``ok``."""
        now = now or datetime.now(UTC).replace(tzinfo=None)  # stored times are naive UTC
        if not enabled:
            return "off"
        if self.disabled:
            return "paused"
        if self.resting_until is not None and self.resting_until > now:
            return "resting"
        return "failing" if self.consecutive_errors else "ok"


def _when(article: Article) -> datetime:
    return article.published_at or article.fetched_at


def shown_url(article: Article) -> str | None:
    """The URL every reader is given: the canonical one, tracking parameters and fragment removed."""
    return article.canonical_url or article.url


def _source_of(article: Article) -> StorySource:
    return StorySource(article.id, article.source, article.title, shown_url(article), article.published_at)


def originals(articles: Iterable[Article]) -> dict[int, int]:
    """Each article's original: the earliest member (published, else fetched, time; then id) of its group of copies.

    A group is every article joined by ``duplicate_of`` links, in either direction: a reprint polled before the
    wire original it copies is stored first, and the original then links to it, yet the original is the earlier
    one. Links to articles not given are ignored; an article without copies is its own original.
    """
    articles = list(articles)
    parent = {a.id: a.id for a in articles}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in articles:
        if a.duplicate_of in parent:
            parent[find(a.id)] = find(a.duplicate_of)
    earliest: dict[int, Article] = {}
    for a in sorted(articles, key=lambda a: (_when(a), a.id)):
        earliest.setdefault(find(a.id), a)
    return {a.id: earliest[find(a.id)].id for a in articles}


def sources_of(articles: list[Article]) -> list[StorySource]:
    """One entry per distinct article, oldest first, with its copies folded under it.

    The earliest member of a group of copies (see :func:`originals`) stands for it, whichever was fetched first.
    """
    by_id = {a.id: a for a in articles}
    groups: dict[int, list[Article]] = {}
    for article_id, original in originals(articles).items():
        groups.setdefault(original, []).append(by_id[article_id])
    entries = []
    for original, members in groups.items():
        entry = _source_of(by_id[original])
        copies = sorted((a for a in members if a.id != original), key=lambda a: (_when(a), a.id))
        entry.copies = [_source_of(a) for a in copies]
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.published or datetime.max, e.article_id))


def lead_of(article: Article) -> str:
    return lead_sentence(article.text or article.summary or article.title)


def _entry(story: Story, articles: list[Article]) -> StoryEntry:
    rep = next((a for a in articles if a.id == story.representative_id), articles[0] if articles else None)
    return StoryEntry(
        id=story.id,
        headline=story.title,
        url=shown_url(rep) if rep else None,
        lead=lead_of(rep) if rep else "",
        source_count=story.source_count,
        article_count=story.article_count,
        first_seen=story.first_seen,
        last_updated=story.last_updated,
        sources=sources_of(articles),
    )


def _articles_by_story(session: Session, story_ids: list[int]) -> dict[int, list[Article]]:
    grouped: dict[int, list[Article]] = {sid: [] for sid in story_ids}
    for start in range(0, len(story_ids), 500):
        chunk = story_ids[start : start + 500]
        for article in session.exec(select(Article).where(Article.story_id.in_(chunk))).all():
            grouped[article.story_id].append(article)
    return grouped


def _entries(session: Session, stories: list[Story]) -> list[StoryEntry]:
    grouped = _articles_by_story(session, [s.id for s in stories])
    return [_entry(story, grouped[story.id]) for story in stories]


def list_stories(
    engine: Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    min_sources: int = 1,
    search: str | None = None,
    limit: int | None = 100,
) -> list[StoryEntry]:
    """Stories updated in [since, until), with at least ``min_sources`` outlets, ranked by outlets then recency.

    With ``search``, the stories whose articles match it in full-text search (:mod:`aggregator.search`),
    ranked by relevance instead; an unsearchable query raises :class:`aggregator.search.SearchError`.
    """
    if search is not None:  # "" is an empty search (an error), not no search
        from .search import MAX_PAGE, search_stories

        found = search_stories(engine, search, limit=limit or MAX_PAGE, since=since, until=until,
                               min_sources=min_sources)
        return [hit.story for hit in found]
    with Session(engine) as session:
        query = select(Story).where(Story.merged_into == None, Story.article_count > 0)  # noqa: E711
        if since is not None:
            query = query.where(Story.last_updated >= _naive_utc(since))
        if until is not None:
            query = query.where(Story.first_seen < _naive_utc(until))
        if min_sources > 1:
            query = query.where(Story.source_count >= min_sources)
        query = query.order_by(Story.source_count.desc(), Story.last_updated.desc(), Story.id.desc())
        if limit:
            query = query.limit(limit)
        return _entries(session, list(session.exec(query).all()))


def get_story(engine: Engine, story_id: int) -> StoryDetail | None:
    """A story with every article, how each joined, and the stories merged into it; follows merges."""
    with Session(engine) as session:
        story = session.get(Story, story_id)
        seen = set()
        while story is not None and story.merged_into is not None and story.id not in seen:
            seen.add(story.id)
            story = session.get(Story, story.merged_into)
        if story is None:
            return None
        articles = list(session.exec(select(Article).where(Article.story_id == story.id)).all())
        merged = list(session.exec(select(Story.id).where(Story.merged_into == story.id)).all())
        original = originals(articles)
        views = [
            ArticleView(
                id=a.id, source=a.source, title=a.title, url=shown_url(a), published=a.published_at,
                fetched=a.fetched_at, text_source=a.text_source, joined_by=a.story_signal, score=a.story_score,
                duplicate_of=original[a.id] if original[a.id] != a.id else None,
                duplicate_signal=a.duplicate_signal, duplicate_score=a.duplicate_score, matched_with=a.duplicate_of,
            )
            for a in sorted(articles, key=lambda a: (_when(a), a.id))
        ]
        return StoryDetail(_entry(story, articles), views, merged, makeup_of(articles))


def makeup_of(articles: list[Article]) -> Makeup:
    """What a story's articles share (evidence.story_makeup), from their stored texts and terms."""
    from .evidence import story_makeup  # with the text tools, numpy: not for a command that shows no story
    from .text import terms

    return story_makeup((a.id, a.title, a.text, _when(a), (a.terms or "").split() or terms(a.title))
                        for a in sorted(articles, key=lambda a: (_when(a), a.id)))


def day_bounds(day: date, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The UTC start and end of a calendar day in time zone ``tz``."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, zone)
    end = start + timedelta(days=1)
    return start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)


def build_digest(engine: Engine, day: date | None = None, tz: str = "UTC", min_sources: int = 1) -> Digest:
    """The day's stories: every story with an article published (or first seen) that day, ranked."""
    day = day or datetime.now(ZoneInfo(tz)).date()
    start, end = day_bounds(day, tz)
    when = func.coalesce(Article.published_at, Article.fetched_at)
    with Session(engine) as session:
        ids = select(Article.story_id).where(when >= start, when < end)
        stories = session.exec(
            select(Story)
            .where(Story.id.in_(ids), Story.merged_into == None, Story.source_count >= min_sources)  # noqa: E711
            .order_by(Story.source_count.desc(), Story.last_updated.desc(), Story.id.desc())
        ).all()
        entries = _entries(session, list(stories))
    return Digest(day=day, generated_at=datetime.now(UTC).replace(tzinfo=None), stories=entries, timezone=tz)


def feed_health(engine: Engine) -> list[FeedHealth]:
    with Session(engine) as session:
        counts = dict(session.exec(select(Article.feed_id, func.count()).group_by(Article.feed_id)).all())
        return [
            FeedHealth(
                name=f.name, url=f.url, title=f.title, last_fetched=f.last_fetched_at, last_status=f.last_status,
                new_entries=f.last_new_entries, consecutive_errors=f.consecutive_errors, last_error=f.last_error,
                resting_until=f.retry_after, disabled=f.disabled_reason, articles=counts.get(f.id, 0),
            )
            for f in session.exec(select(Feed).order_by(Feed.name)).all()
        ]


def originals_of_copies(engine: Engine) -> dict[int, int]:
    """Every stored copy's id -> the original of its group (see :func:`originals`); articles without copies are
    left out. Reads only ids and times of the articles that have copies or are copies."""
    linked = select(Article.duplicate_of).where(Article.duplicate_of != None)  # noqa: E711
    with Session(engine) as session:
        rows = session.exec(
            select(Article.id, Article.duplicate_of, Article.published_at, Article.fetched_at).where(
                or_(Article.duplicate_of != None, Article.id.in_(linked))  # noqa: E711
            )
        ).all()
    return {copy: original for copy, original in originals(rows).items() if copy != original}


def iter_articles(engine: Engine, batch: int = 1000) -> Iterator[Article]:
    """Every stored article, oldest first, read in batches (for export)."""
    last = 0
    while True:
        with Session(engine) as session:
            rows = session.exec(select(Article).where(Article.id > last).order_by(Article.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# ---- the web view's pages (bounded: every call takes a limit) --------------------------------------------


def story_page(
    engine: Engine,
    since: datetime | None = None,
    min_sources: int = 1,
    feeds: list[str] | None = None,
    limit: int = 30,
    offset: int = 0,
) -> tuple[list[StoryEntry], bool]:
    """One page of stories ranked like the digest, and whether another page follows.

    ``feeds`` keeps stories with an article from one of these feed names (the feeds of a tag).
    """
    with Session(engine) as session:
        query = select(Story).where(Story.merged_into == None, Story.article_count > 0)  # noqa: E711
        if since is not None:
            query = query.where(Story.last_updated >= _naive_utc(since))
        if min_sources > 1:
            query = query.where(Story.source_count >= min_sources)
        if feeds is not None:
            members = select(Article.story_id).join(Feed, Article.feed_id == Feed.id).where(Feed.name.in_(feeds))
            query = query.where(Story.id.in_(members))
        query = query.order_by(Story.source_count.desc(), Story.last_updated.desc(), Story.id.desc())
        rows = list(session.exec(query.offset(offset).limit(limit + 1)).all())
        return _entries(session, rows[:limit]), len(rows) > limit


def digest_days(engine: Engine, tz: str = "UTC", limit: int = 366) -> list[tuple[date, int]]:
    """The calendar days (in ``tz``) that have articles, newest first, with their article counts.

    Counted per UTC hour in the database, then each hour placed in its local day, so the work is bounded by
    the hours that have articles, not by the articles.
    """
    when = func.coalesce(Article.published_at, Article.fetched_at)
    if engine.url.get_backend_name() == "postgresql":
        hour = func.to_char(when, "YYYY-MM-DD HH24")
    else:
        hour = func.strftime("%Y-%m-%d %H", when)
    zone = ZoneInfo(tz)
    days: dict[date, int] = {}
    with Session(engine) as session:
        for label, count in session.exec(select(hour, func.count()).group_by(hour)).all():
            if not label:
                continue
            start = datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=UTC)
            local = start.astimezone(zone).date()
            days[local] = days.get(local, 0) + count
    return sorted(days.items(), reverse=True)[:limit]


def last_poll(engine: Engine) -> datetime | None:
    """When a feed was last fetched successfully (naive UTC), or ``None``."""
    with Session(engine) as session:
        return session.exec(select(func.max(Feed.last_success_at))).one()
