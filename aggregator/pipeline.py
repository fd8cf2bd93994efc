"""One poll of one feed, start to end: fetch -> parse -> extract -> dedup/cluster -> store.

The daemon's jobs and ``aggregator poll`` both call :meth:`Poller.poll`, so they run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from . import stats
from .config import Config, FeedConfig
from .extract import EXTRACT_WORKERS, PAGES_PER_PROCESS, choose_text, extract_from_html
from .fetch import Fetcher, FetchError, FetchResult, decode_html
from .models import Article, Feed, FetchLog, utcnow
from .quickpoll import Fetched, PollResult, chosen_feeds, log_result, newest_entries, not_due
from .store import session_scope

if TYPE_CHECKING:  # the dedup and clustering engine (numpy, datasketch) is imported when a new entry needs it,
    from .ingest import Incoming, Ingestor  # and the feed parser (feedparser, courlan) when a feed sent a body
    from .parse import ParsedEntry

log = logging.getLogger("aggregator.poll")
_FEED, _FETCH_LOG = Feed.__table__, FetchLog.__table__
_UNCHANGED = (  # what _record_success writes for a feed that answered 304, one row of an executemany
    update(_FEED).where(_FEED.c.id == bindparam("fid"))
    .values(last_fetched_at=bindparam("started"), last_success_at=bindparam("started"), last_status=bindparam("status"),
            last_new_entries=0, consecutive_errors=0, parse_errors=0, failing_since=None, last_error=None,
            retry_after=None, etag=func.coalesce(bindparam("etag"), _FEED.c.etag),
            last_modified=func.coalesce(bindparam("modified"), _FEED.c.last_modified))
)

MAX_BACKOFF = timedelta(hours=6)
# New articles written in one transaction: a commit each costs more than the article (the story's row is
# written once a batch, and every commit of a WAL database is a write), while a killed daemon still loses at
# most one batch, which the next poll fetches again.
WRITE_BATCH = 100
PAUSE_AFTER_PARSE_ERRORS = 3  # a feed that is not a feed three times in a row needs a person to look
PAUSE_AFTER_FAILING = timedelta(days=3)  # a feed failing this long is paused rather than retried forever


@dataclass
class _Progress:
    """What one poll has committed so far, readable after the poll failed half-way."""

    stored: int = 0


def database_error(exc: OperationalError) -> str:
    return str(exc.orig) if exc.orig is not None else str(exc)


def backoff(errors: int, retry_after: float | None = None) -> timedelta:
    """How long a failing feed rests: Retry-After when the server said so, else exponential with jitter."""
    if retry_after is not None:
        return min(timedelta(seconds=retry_after), timedelta(days=1))
    seconds = min(MAX_BACKOFF.total_seconds(), 60 * 2 ** min(errors, 12))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


def sync_feeds(engine: Engine, config: Config) -> dict[str, Feed]:
    """Make sure every configured feed has a row; a URL changed in the config replaces the stored one."""
    with session_scope(engine) as session:
        rows = {feed.name: feed for feed in session.exec(select(Feed)).all()}
        for feed_config in config.feeds:
            row = rows.get(feed_config.name)
            if row is None:
                row = Feed(name=feed_config.name, url=feed_config.url, config_url=feed_config.url)
                rows[feed_config.name] = row
            elif row.config_url != feed_config.url:
                row.url = row.config_url = feed_config.url
                row.disabled_reason, row.consecutive_errors, row.etag, row.last_modified = None, 0, None, None
            session.add(row)
    return rows


def address_after_move(current: str, moved: str) -> str:
    """The feed's address after a permanent redirect to ``moved``: that one, unless it gives up https (the
    redirect is followed for the fetch, but an unencrypted address is not made the feed's for good)."""
    if current.lower().startswith("https:") and moved.lower().startswith("http:"):
        return current
    return moved


def incoming_from(feed_name: str, feed_id: int | None, entry: ParsedEntry, page_text: str = "") -> Incoming:
    """The article to store for ``entry``: the page's text when it was extracted and is better, else the feed's."""
    from .ingest import Incoming

    chosen = choose_text(page_text, entry.content or entry.summary, entry.title)
    return Incoming(
        source_key=feed_name,
        external_id=entry.external_id,
        source=feed_name,
        title=entry.title or chosen.text[:120],
        text=chosen.text,
        text_source=chosen.source,
        url=entry.url,
        canonical_url=entry.canonical_url,
        summary=entry.summary,
        author=entry.author,
        published=entry.published,
        feed_id=feed_id,
    )


class Poller:
    def __init__(
        self, engine: Engine, config: Config, fetcher: Fetcher | None = None, fetched: dict[str, Fetched] | None = None
    ):
        """``fetched``: feeds already fetched (and maybe read) by :mod:`aggregator.quickpoll`, by name; each is
        carried on from there by the next poll of it, not fetched again."""
        self.engine = engine
        self.config = config
        self.settings = config.settings
        self.fetcher = fetcher
        self._ingestor: Ingestor | None = None
        self._write_lock = asyncio.Lock()
        # pages fetched, not yet read: at least PAGES_PER_PROCESS an extraction process, so that a machine of
        # many cores keeps them all busy while its fetches are capped by max_concurrency
        self._page_slots = asyncio.Semaphore(max(1, self.settings.max_concurrency,
                                                 PAGES_PER_PROCESS * EXTRACT_WORKERS))
        # feeds of the current pass that answered 304, recorded together at its end (None: record each at once)
        self._unchanged: list[tuple[Feed, datetime, FetchResult]] | None = None
        self._fetched = dict(fetched or {})

    @property
    def ingestor(self) -> Ingestor:
        """The dedup and clustering engine, loaded from the stored articles on first use: a poll that finds
        nothing new never reads them (nor imports the MinHash code)."""
        if self._ingestor is None:
            from .ingest import Ingestor, settings_for

            settings = settings_for(self.settings.story_window, self.settings.semantic_clustering)
            ingestor = Ingestor(self.engine, settings, self.settings.preferred_sources)
            ingestor.reload()
            self._ingestor = ingestor
        return self._ingestor

    async def save_engine(self) -> None:
        """Save the engine's snapshot (see Ingestor.save_snapshot) between writes, when it was loaded; a failure
        is a log line, since the next start can always rebuild the engine from the database."""
        if self._ingestor is None:
            return
        async with self._write_lock:
            started = time.monotonic()
            try:
                saved = await asyncio.to_thread(self._ingestor.save_snapshot)
            except Exception as exc:  # noqa: BLE001 - a full disk, a read-only folder: only a slower start
                log.warning("engine snapshot not saved: %s", exc)
                return
        if saved:
            log.info("engine snapshot saved (%d open articles) in %.1fs", len(self._ingestor.clusterer.articles),
                     time.monotonic() - started)

    async def poll(self, names: list[str] | None = None, force: bool = False) -> list[PollResult]:
        """Poll the named feeds (all enabled ones by default) concurrently; a name given twice is polled once."""
        feeds = chosen_feeds(self.config, names)
        try:
            rows = sync_feeds(self.engine, self.config)  # read once for the whole pass, not once a feed
        except OperationalError as exc:
            reason = database_error(exc)
            log.error("feeds not polled: database error: %s (will retry at the next poll)", reason)
            return [PollResult(f.name, "error", error=f"database error: {reason}") for f in feeds]
        own_fetcher = self.fetcher is None
        if own_fetcher:
            self.fetcher = Fetcher(self.settings)
        self._unchanged = []
        try:
            return list(await asyncio.gather(*(self.poll_feed(f, force=force, row=rows.get(f.name)) for f in feeds)))
        finally:
            unchanged, self._unchanged = self._unchanged, None
            self._record_unchanged(unchanged)
            if own_fetcher:
                await self.fetcher.aclose()
                self.fetcher = None

    async def poll_feed(self, feed: FeedConfig, force: bool = False, row: Feed | None = None) -> PollResult:
        """One poll of one feed (``row``: its stored row, when the caller just read it); never raises, so one
        feed cannot stop the others or the scheduler."""
        started = time.monotonic()
        progress = _Progress()
        try:
            result = await self._poll_feed(feed, force, progress, row)
        except OperationalError as exc:
            # A full disk, a read-only file, a lost server: nothing half-written was committed (each batch of
            # articles is its own transaction, so those stored before the error stay); the next poll tries again.
            reason = database_error(exc) + _stored_before(progress)
            log.error("feed=%s not stored: database error: %s (will retry at the next poll)", feed.name, reason)
            result = PollResult(feed.name, "error", new_entries=progress.stored, error=f"database error: {reason}")
        except Exception as exc:  # a bug: logged, and the daemon goes on
            log.exception("feed=%s poll failed", feed.name)
            result = PollResult(feed.name, "error", new_entries=progress.stored,
                                error=f"{type(exc).__name__}: {exc}{_stored_before(progress)}")
        result.duration = time.monotonic() - started
        log_result(result)
        stats.poll_done(result.status, result.duration, result.new_entries)
        return result

    async def _poll_feed(self, feed: FeedConfig, force: bool, progress: _Progress, row: Feed | None) -> PollResult:
        row = row if row is not None and row.id is not None else self._feed_row(feed.name)
        fetched = self._fetched.pop(feed.name, None)
        resting = not_due(row, force) if fetched is None else None
        if resting is not None:
            return resting
        started = fetched.started if fetched else utcnow()
        try:
            response = fetched.result() if fetched else await self.fetcher.fetch_feed(
                row.url, row.etag, row.last_modified)
        except FetchError as exc:
            return self._record_failure(row.id, started, exc.status, str(exc), exc.retry_after, gone=exc.status == 410)
        if response.not_modified:
            if self._unchanged is not None and not row.disabled_reason and not response.permanent_redirect:
                self._unchanged.append((row, started, response))
                return PollResult(row.name, "not-modified", response.status)
            return self._record_success(row, started, response, 0, 0, status="not-modified")
        from .parse import ParseError, parse_feed

        try:
            parsed = fetched.parsed if fetched and fetched.parsed else await asyncio.to_thread(
                parse_feed, response.content, response.headers, response.url, self.settings.max_response_bytes
            )
        except ParseError as exc:
            return self._record_failure(row.id, started, response.status, str(exc), None, parse_error=True)
        entries = newest_entries(parsed.entries, self.settings.max_entries_per_feed)
        fresh = self._unseen(feed.name, entries)
        stored = await self._take(feed, row.id, fresh, progress)
        self._update_feed_meta(row.id, parsed.title, parsed.site_url)
        result = self._record_success(row, started, response, stored, len(entries))
        result.unreadable_entries, result.warning = parsed.skipped, parsed.warning
        return result

    def _feed_row(self, name: str) -> Feed:
        with Session(self.engine) as session:
            row = session.exec(select(Feed).where(Feed.name == name)).first()
        if row is None:
            sync_feeds(self.engine, self.config)
            return self._feed_row(name)
        return row

    def _unseen(self, feed_name: str, entries: list[ParsedEntry]) -> list[ParsedEntry]:
        ids = [e.external_id for e in entries]
        with Session(self.engine) as session:
            known = set()
            for start in range(0, len(ids), 500):
                known.update(
                    session.exec(
                        select(Article.external_id).where(
                            Article.source_key == feed_name, Article.external_id.in_(ids[start : start + 500])
                        )
                    ).all()
                )
        unique: dict[str, ParsedEntry] = {}
        for entry in entries:
            if entry.external_id not in known:
                unique.setdefault(entry.external_id, entry)
        return list(unique.values())

    async def _take(self, feed: FeedConfig, feed_id: int, fresh: list[ParsedEntry], progress: _Progress) -> int:
        """Prepare and store the feed's new entries; how many were stored (the queue's poller hands them on)."""
        items = await asyncio.gather(*(self._prepare(feed, feed_id, e) for e in fresh))
        return await self._store(items, progress)

    async def _prepare(self, feed: FeedConfig, feed_id: int, entry: ParsedEntry) -> Incoming:
        """Fetch and extract the entry's page when the feed is full-text, else use the feed's own text."""
        page_text = ""
        if feed.full_text and entry.url:
            page_text = await self.page_text(entry.url)
        return incoming_from(feed.name, feed_id, entry, page_text)

    async def page_text(self, url: str) -> str:
        """The extracted text of the page at ``url``, or "" when it could not be fetched."""
        # At most max_concurrency pages between their fetch and the end of their extraction: fetching is much
        # faster than extracting, and without the bound a poll would hold every new page (bytes and text) at once.
        async with self._page_slots:
            try:
                page = await self.fetcher.fetch_page(url)
            except FetchError as exc:
                log.debug("page %s not fetched: %s", url, exc)
                return ""
            html, final, page = decode_html(page), page.url, None  # the bytes go as soon as they are text
            return await asyncio.to_thread(extract_from_html, html, final, timeout=self.settings.extract_timeout)

    async def _store(self, items: list[Incoming], progress: _Progress) -> int:
        """Store the new articles oldest first, WRITE_BATCH to a transaction; ``progress`` counts the commits,
        so a poll that fails half-way still reports the articles it stored."""
        items = sorted(items, key=lambda i: (i.published or datetime.max, i.external_id))
        async with self._write_lock:
            if items and self._ingestor is None:  # loading reads every open article: not on the event loop
                await asyncio.to_thread(lambda: self.ingestor)
            for start in range(0, len(items), WRITE_BATCH):
                progress.stored += self._store_batch(items[start : start + WRITE_BATCH])
        return progress.stored

    def _store_batch(self, items: list[Incoming]) -> int:
        """One transaction; how many of ``items`` it stored (the others were stored before)."""
        try:
            with session_scope(self.engine) as session:
                results = self.ingestor.ingest_batch(session, items)
        except Exception:
            # The engine already counted the batch: bring it back in step with what was committed.
            self.ingestor.reload()
            raise
        return sum(result is not None for result in results)

    def _update_feed_meta(self, feed_id: int, title: str, site_url: str | None) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Feed, feed_id)
            row.title = title or row.title
            row.site_url = site_url or row.site_url
            session.add(row)

    def _record_success(
        self, row: Feed, started: datetime, response: FetchResult, new: int, seen: int, status: str = "ok"
    ) -> PollResult:
        """Record a successful fetch: two statements in one transaction, without the ORM, since a pass over many
        feeds that answer 304 is mostly this."""
        values = {
            "last_fetched_at": started, "last_success_at": started, "last_status": response.status,
            "last_new_entries": new, "consecutive_errors": 0, "parse_errors": 0, "failing_since": None,
            "last_error": None, "retry_after": None,
        }
        if response.etag:
            values["etag"] = response.etag
        if response.last_modified:
            values["last_modified"] = response.last_modified
        moved = response.permanent_redirect
        if moved and moved != row.url:
            if address_after_move(row.url, moved) == moved:
                log.info("feed=%s moved permanently to %s", row.name, moved)
                values["url"] = moved
            else:
                log.warning("feed=%s moved permanently to %s: not stored (https to http)", row.name, moved)
        if row.disabled_reason:  # a forced poll read it: whatever paused the feed is over
            log.info("feed=%s resumed: read again after being %s", row.name, row.disabled_reason)
            values["disabled_reason"] = None
        with self.engine.begin() as connection:
            connection.execute(update(_FEED).where(_FEED.c.id == row.id).values(**values))
            connection.execute(insert(_FETCH_LOG), self._log_values(row.id, started, response.status, new, None))
        return PollResult(row.name, status, response.status, new, seen)

    def _record_unchanged(self, unchanged: list[tuple[Feed, datetime, FetchResult]]) -> None:
        """Record the feeds of a pass that answered 304 (nothing else changed for them): two statements for all."""
        if not unchanged:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(_UNCHANGED, [
                    {"fid": row.id, "started": started, "status": response.status, "etag": response.etag,
                     "modified": response.last_modified} for row, started, response in unchanged
                ])
                connection.execute(insert(_FETCH_LOG), [self._log_values(row.id, started, response.status, 0, None)
                                                        for row, started, response in unchanged])
        except OperationalError as exc:  # the feeds answered; only their fetch times are not stored
            log.error("fetch times of %d unchanged feeds not stored: database error: %s", len(unchanged),
                      database_error(exc))

    def _record_failure(
        self,
        feed_id: int,
        started: datetime,
        status: int | None,
        error: str,
        retry_after: float | None,
        gone: bool = False,
        parse_error: bool = False,
    ) -> PollResult:
        with session_scope(self.engine) as session:
            row = session.get(Feed, feed_id)
            row.last_fetched_at = started
            row.last_status = status
            row.last_error = error
            row.last_new_entries = 0
            row.consecutive_errors += 1
            row.parse_errors = row.parse_errors + 1 if parse_error else 0
            row.failing_since = row.failing_since or started
            row.retry_after = utcnow() + backoff(row.consecutive_errors, retry_after)
            if gone:
                row.disabled_reason = "paused: the server says the feed is gone (HTTP 410)"
            elif row.parse_errors >= PAUSE_AFTER_PARSE_ERRORS:
                row.disabled_reason = f"paused: not a readable feed {row.parse_errors} times in a row"
            elif started - row.failing_since >= PAUSE_AFTER_FAILING:
                row.disabled_reason = f"paused: failing since {row.failing_since:%Y-%m-%d %H:%M} UTC"
            session.add(row)
            session.add(self._log_row(feed_id, started, status, 0, error))
        return PollResult(row.name, "error", status, error=error)

    @staticmethod
    def _log_values(feed_id: int, started: datetime, status: int | None, new: int, error: str | None) -> dict:
        duration = int((utcnow() - started).total_seconds() * 1000)
        return {"feed_id": feed_id, "started_at": started, "duration_ms": duration, "status": status,
                "new_entries": new, "error": error}

    @classmethod
    def _log_row(cls, feed_id: int, started: datetime, status: int | None, new: int, error: str | None) -> FetchLog:
        return FetchLog(**cls._log_values(feed_id, started, status, new, error))


def _stored_before(progress: _Progress) -> str:
    return f" (after storing {progress.stored} new articles)" if progress.stored else ""


def resume_feed(engine: Engine, name: str) -> bool:
    """Un-pause a feed and forget its errors; False when no such feed was ever polled."""
    with session_scope(engine) as session:
        row = session.exec(select(Feed).where(Feed.name == name)).first()
        if row is None:
            return False
        row.disabled_reason = row.retry_after = row.failing_since = None
        row.consecutive_errors = row.parse_errors = 0
        session.add(row)
    return True


def poll_once(engine: Engine, config: Config, names: list[str] | None = None, force: bool = False) -> list[PollResult]:
    """One pass over the feeds, for cron and scripts."""

    async def run() -> list[PollResult]:
        return await Poller(engine, config).poll(names, force=force)

    return asyncio.run(run())
