"""``aggregator poll`` when nothing is new: the feeds' state read and written with the standard library's sqlite3.

Most polls find nothing: every feed answers 304 Not Modified or lists the entries it listed before. SQLAlchemy,
SQLModel and the clustering engine take longer to import than such a poll takes to run, so a poll of a SQLite
database of the current schema starts here: every due feed is fetched (and read, when it sent a body), and those
with nothing new are recorded together in one transaction. Only when a feed has more to do (new entries, a
failure, a permanent redirect, a paused feed polled with --force, a feed new to the database) is the full
pipeline (:class:`aggregator.pipeline.Poller`) loaded, and it is handed what was fetched and read, so each feed
is asked once.

The pieces of a poll that need no ORM (its result, the choice of entries, the checks before a fetch, the log
line) live here too, and the full pipeline uses them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from .config import Config, FeedConfig
from .dbfile import connect_current, lock, sqlite_file, unlock
from .fetch import Fetcher, FetchError, FetchResult

if TYPE_CHECKING:  # the feed parser (feedparser, courlan) is imported when a feed sent a body
    from .parse import ParsedEntry, ParsedFeed

log = logging.getLogger("aggregator.poll")

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite
_FEED_STATES = "SELECT id, name, url, config_url, etag, last_modified, retry_after, disabled_reason FROM feed"
# What Poller._record_success (and _update_feed_meta, for a feed that sent a body) writes for a feed with nothing
# new, one row of an executemany.
_RECORD_UNCHANGED = """
UPDATE feed SET last_fetched_at = :started, last_success_at = :started, last_status = :status,
    last_new_entries = 0, consecutive_errors = 0, parse_errors = 0, failing_since = NULL, last_error = NULL,
    retry_after = NULL, etag = coalesce(:etag, etag), last_modified = coalesce(:modified, last_modified),
    title = coalesce(nullif(:title, ''), title), site_url = coalesce(nullif(:site_url, ''), site_url)
WHERE id = :id"""
_LOG_FETCH = """
INSERT INTO fetchlog (feed_id, started_at, duration_ms, status, new_entries, error)
VALUES (:id, :started, :duration_ms, :status, 0, NULL)"""
_IDS_A_QUERY = 500  # external ids looked up per statement (SQLite allows 999 parameters in older builds)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class PollResult:
    feed: str
    status: str  # "ok", "not-modified", "error", "skipped" (resting), "disabled" (paused)
    http_status: int | None = None
    new_entries: int = 0  # articles committed by this poll, also when it then ended in an error
    seen_entries: int = 0
    duration: float = 0.0
    error: str | None = None  # why it failed, or why it was skipped
    unreadable_entries: int = 0  # entries of the feed that could not be read (no title, link or text...)
    warning: str | None = None  # what was wrong with a feed that still yielded entries

    @property
    def polled(self) -> bool:
        """The feed was read (or the server said nothing changed); False when it failed or was not fetched."""
        return self.status in ("ok", "not-modified")


class FeedRow(Protocol):
    """What the checks before a fetch read of a feed's stored row (:class:`aggregator.models.Feed` or
    :class:`FeedState`)."""

    name: str
    retry_after: datetime | None
    disabled_reason: str | None


@dataclass
class FeedState:
    """The columns of a feed's row that the quick pass reads."""

    id: int
    name: str
    url: str
    config_url: str
    etag: str | None
    last_modified: str | None
    retry_after: datetime | None
    disabled_reason: str | None


@dataclass
class Fetched:
    """A feed's answer as the quick pass got it, for the full pipeline to carry on from."""

    started: datetime
    response: FetchResult | None = None
    error: FetchError | None = None
    parsed: ParsedFeed | None = None  # when the quick pass read the body

    def result(self) -> FetchResult:
        """The response, or the fetch's error raised again."""
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def newest_entries(entries: list[ParsedEntry], limit: int) -> list[ParsedEntry]:
    """At most ``limit`` of ``entries``, the newest: most feeds list newest first, but archives and some
    generators list oldest first, and cutting those in document order would keep only their oldest entries.
    Entries without a time keep their place among themselves, after the dated ones."""
    if len(entries) <= limit or not any(entry.published for entry in entries):
        return entries[:limit]
    return sorted(entries, key=lambda entry: entry.published or datetime.min, reverse=True)[:limit]


def not_due(row: FeedRow, force: bool) -> PollResult | None:
    """The result of a feed that is not fetched now, paused (``disabled``) or resting after failures
    (``skipped``); None when it is due or ``force`` says to fetch it anyway."""
    if force:
        return None
    if row.disabled_reason:
        return PollResult(row.name, "disabled", error=row.disabled_reason)
    if row.retry_after and row.retry_after > utcnow():
        return PollResult(row.name, "skipped", error=f"resting until {row.retry_after:%Y-%m-%d %H:%M} UTC")
    return None


def log_result(result: PollResult) -> None:
    """The one log line of a feed's poll."""
    log.log(
        logging.WARNING if result.status == "error" or result.unreadable_entries else logging.INFO,
        "feed=%s status=%s http=%s new=%d seen=%d duration=%.2fs%s%s%s",
        result.feed, result.status, result.http_status, result.new_entries, result.seen_entries,
        result.duration, f" error={result.error}" if result.error else "",
        f" unreadable={result.unreadable_entries}" if result.unreadable_entries else "",
        f" warning={result.warning}" if result.warning else "",
    )


def chosen_feeds(config: Config, names: list[str] | None) -> list[FeedConfig]:
    """The feeds a poll reads: those named (once each, paused in the config or not), else every enabled one."""
    if names:
        return [config.feed(name) for name in dict.fromkeys(names)]
    return [feed for feed in config.feeds if feed.enabled]


Poll = Callable[[list[str] | None, bool], list[PollResult]]


@contextmanager
def open_poll(database_url: str, config: Config) -> Iterator[Poll]:
    """The database opened and locked for one poll (one writer per database, as for the daemon), as a function
    ``poll(names, force)``: the quick pass for a SQLite file of the current schema, else the full pipeline, which
    creates or upgrades the database first."""
    path = sqlite_file(database_url)
    connection = connect_current(path) if path is not None else None
    if connection is None:
        from .api import Aggregator

        with Aggregator(database=database_url, config=config, create=True) as aggregator:
            yield aggregator.poll
        return
    try:
        held = lock(path, "poll")
    except BaseException:
        connection.close()
        raise
    try:
        quick = QuickPass(connection, database_url, config)
        yield lambda names, force: asyncio.run(quick.poll(names, force))
    finally:
        connection.close()
        unlock(held)


class QuickPass:
    """One poll over a SQLite database through sqlite3, handing the feeds with more to do to the full pipeline."""

    def __init__(self, connection: sqlite3.Connection, database_url: str, config: Config):
        self.connection = connection
        self.database_url = database_url
        self.config = config
        self.settings = config.settings
        self.fetcher: Fetcher | None = None
        self._unchanged: list[dict] = []  # rows for _RECORD_UNCHANGED and _LOG_FETCH, written at the end of the pass

    async def poll(self, names: list[str] | None, force: bool) -> list[PollResult]:
        feeds = chosen_feeds(self.config, names)
        try:
            states = self._feed_states()
        except sqlite3.Error as exc:  # the full pipeline reports it, feed by feed
            log.debug("feeds handed to the full pipeline: %s", exc)
            states = {}
        self.fetcher = Fetcher(self.settings)
        try:
            looks = await asyncio.gather(*(self._look(feed, states.get(feed.name), force) for feed in feeds))
            done = {look.feed: look for look in looks if isinstance(look, PollResult)}
            self._record_unchanged()
            rest = {feed.name: look for feed, look in zip(feeds, looks, strict=True)
                    if not isinstance(look, PollResult)}
            if rest:  # by name: what was fetched of each, or None
                for result in await self._full_pass(list(rest), rest, force):
                    done[result.feed] = result
        finally:
            await self.fetcher.aclose()
        return [done[feed.name] for feed in feeds]

    def _feed_states(self) -> dict[str, FeedState]:
        states = {}
        for row in self.connection.execute(_FEED_STATES):
            state = FeedState(*row)
            state.retry_after = datetime.fromisoformat(state.retry_after) if state.retry_after else None
            states[state.name] = state
        return states

    async def _look(self, feed: FeedConfig, row: FeedState | None, force: bool) -> PollResult | Fetched | None:
        """The feed's result when this pass finishes it (one with nothing new is queued for _record_unchanged);
        else what was fetched, for the full pipeline to carry on from (None: nothing was)."""
        if row is None or row.config_url != feed.url:  # new to the database, or moved by the config
            return None
        started_clock = time.monotonic()
        result = not_due(row, force)
        if result is None:
            started = utcnow()
            try:
                response = await self.fetcher.fetch_feed(row.url, row.etag, row.last_modified)
            except FetchError as exc:
                return Fetched(started, error=exc)
            except Exception as exc:  # noqa: BLE001 - a bug: the full pipeline fetches the feed again and reports it
                log.debug("feed=%s handed to the full pipeline: %s", feed.name, exc)
                return None
            fetched = Fetched(started, response)
            if row.disabled_reason or response.permanent_redirect:
                return fetched
            result = PollResult(row.name, "not-modified", response.status)
            record = {"id": row.id, "started": started, "status": response.status, "etag": response.etag,
                      "modified": response.last_modified, "title": None, "site_url": None}
            if not response.not_modified:
                try:
                    result = await self._read_unchanged(feed, fetched)
                except Exception as exc:  # noqa: BLE001 - a feed that cannot be read, a locked database...
                    log.debug("feed=%s handed to the full pipeline: %s", feed.name, exc)
                    return fetched
                if result is None:
                    return fetched
                record.update(title=fetched.parsed.title, site_url=fetched.parsed.site_url)
            self._unchanged.append(record)
        result.duration = time.monotonic() - started_clock
        log_result(result)  # (the in-process metrics are left out: a single poll's process serves no /metrics)
        return result

    async def _read_unchanged(self, feed: FeedConfig, fetched: Fetched) -> PollResult | None:
        """The result of a feed whose body lists only stored entries; None when some are new."""
        from .parse import parse_feed

        response = fetched.response
        fetched.parsed = parsed = await asyncio.to_thread(
            parse_feed, response.content, response.headers, response.url, self.settings.max_response_bytes
        )
        entries = newest_entries(parsed.entries, self.settings.max_entries_per_feed)
        if self._any_new(feed.name, [entry.external_id for entry in entries]):
            return None
        return PollResult(feed.name, "ok", response.status, 0, len(entries), unreadable_entries=parsed.skipped,
                          warning=parsed.warning)

    def _any_new(self, source_key: str, ids: list[str]) -> bool:
        wanted = set(ids)
        for start in range(0, len(ids), _IDS_A_QUERY):
            chunk = ids[start : start + _IDS_A_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows = self.connection.execute(
                f"SELECT external_id FROM article WHERE source_key = ? AND external_id IN ({marks})",  # noqa: S608
                [source_key, *chunk],
            )
            wanted.difference_update(row[0] for row in rows)
        return bool(wanted)

    def _record_unchanged(self) -> None:
        """Record the feeds with nothing new: two statements for all, in one transaction."""
        records, self._unchanged = self._unchanged, []
        if not records:
            return
        now = utcnow()
        for record in records:
            record["duration_ms"] = int((now - record["started"]).total_seconds() * 1000)
            record["started"] = record["started"].strftime(_SQLITE_TIME)
        try:
            with self.connection:
                self.connection.executemany(_RECORD_UNCHANGED, records)
                self.connection.executemany(_LOG_FETCH, records)
        except sqlite3.Error as exc:  # the feeds answered; only their fetch times are not stored
            log.error("fetch times of %d unchanged feeds not stored: database error: %s", len(records), exc)

    async def _full_pass(self, names: list[str], fetched: dict[str, Fetched | None], force: bool) -> list[PollResult]:
        from .pipeline import Poller
        from .store import open_database

        engine = await asyncio.to_thread(open_database, self.database_url)
        try:
            handed = {name: early for name, early in fetched.items() if early is not None}
            return await Poller(engine, self.config, self.fetcher, fetched=handed).poll(names, force=force)
        finally:
            engine.dispose()

