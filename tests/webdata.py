"""A small database for the web tests: real stories through the ingest path, hostile strings included."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aggregator.ingest import Incoming, Ingestor
from aggregator.models import Feed, Story
from aggregator.store import open_database, session_scope

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "<svg/onload=alert(3)>",
    "</title><style>body{display:none}</style>",
    "<a href='javascript:alert(6)'>x</a>",
    "\x1b[31mred\x1b[0m \u202eevil",
    "]]></content><script>alert(7)</script>",
]
DAY = datetime(2026, 11, 24)

SUMMIT = [
    ("Continental Press", "Leaders agree to hold Budapest summit on energy and security in December",
     "BUDAPEST — Leaders agreed on Monday to hold a summit in Budapest in December on energy and security, "
     "officials said, the first such meeting in two years."),
    ("Meridian News", "Budapest summit on energy and security set for December, officials say",
     "Officials said a Budapest summit on energy and security will take place in December, the first such "
     "meeting of the leaders in two years."),
    ("Valley Courier", "Budapest to host December summit of leaders on energy security",
     "The leaders will meet in Budapest in December for a summit on energy and security, officials said."),
]
FLOOD = [
    ("Continental Press", "Floods force thousands from homes along the Danube river delta",
     "Heavy rain sent the Danube over its banks, forcing thousands of people from their homes in the delta."),
    ("Valley Courier", "Thousands leave homes as Danube delta floods after heavy rain",
     "Thousands of people left their homes as the Danube delta flooded after days of heavy rain."),
]


@dataclass
class WebData:
    database: str
    feeds: list[str]
    summit_story: int = 0
    flood_story: int = 0
    hostile_story: int = 0
    merged_story: int = 0
    old_day_story: int = 0
    hostile_day: str = ""  # the UTC day of the hostile items (yesterday's, a little after midnight)
    stories: list[int] = field(default_factory=list)


def _incoming(feed: dict[str, int], source: str, key: str, title: str, text: str, when: datetime,
              url: str | None = None) -> Incoming:
    return Incoming(
        source_key=source, external_id=key, source=source, title=title, text=text, summary=text,
        url=url or f"https://news.example/{source.split()[0].lower()}/{key}", feed_id=feed[source], published=when,
        fetched_at=when + timedelta(minutes=5),
    )


def build(path: str, now: datetime | None = None) -> WebData:
    """Fill a SQLite database at ``path``: two recent multi-outlet stories, a hostile one, a merged id, and a
    story on 2026-11-24 (the digest archive)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    database = path if "://" in path else f"sqlite:///{path}"
    engine = open_database(database)
    outlets = ["Continental Press", "Meridian News", "Valley Courier", XSS[1] + " Outlet"]
    with session_scope(engine) as session:
        rows = [Feed(name=name, url=f"https://news.example/{i}/feed.xml", last_status=200, last_fetched_at=now,
                     last_success_at=now, last_new_entries=i) for i, name in enumerate(outlets)]
        rows[3].disabled_reason = XSS[0] + " paused after three unreadable bodies"
        rows[3].last_error = XSS[2]
        session.add_all(rows)
        session.flush()
        feed_ids = {row.name: row.id for row in rows}
    ingestor = Ingestor(engine)
    data = WebData(database=database, feeds=outlets)

    def add(item: Incoming) -> int:
        with session_scope(engine) as session:
            return ingestor.ingest(session, item).story_id

    for i, (source, title, text) in enumerate(SUMMIT):
        data.summit_story = add(_incoming(feed_ids, source, f"summit-{i}", title, text, now - timedelta(hours=5 - i)))
    # A wire copy: the same text from another outlet, folded under its original.
    add(_incoming(feed_ids, "Valley Courier", "summit-copy", SUMMIT[0][1], SUMMIT[0][2], now - timedelta(hours=1)))
    for i, (source, title, text) in enumerate(FLOOD):
        data.flood_story = add(_incoming(feed_ids, source, f"flood-{i}", title, text, now - timedelta(hours=3 - i)))
    hostile = outlets[3]
    data.hostile_day = (now - timedelta(hours=2)).date().isoformat()
    data.hostile_story = add(_incoming(
        feed_ids, hostile, "evil-1", " ".join(XSS) + " parliament vote", " ".join(XSS) + " body of the item",
        now - timedelta(hours=2), url="javascript:alert(8)",
    ))
    add(_incoming(feed_ids, hostile, "evil-2", XSS[0] + " second evil item about tariffs on steel",
                  "tariffs on steel " + XSS[3], now - timedelta(hours=2), url="https://evil.example/?q=\"><script>"))
    data.old_day_story = add(_incoming(
        feed_ids, "Meridian News", "old-1", "Central bank raises rates for the first time since 2023",
        "The central bank raised its benchmark rate for the first time since 2023.", DAY.replace(hour=9),
    ))
    add(_incoming(feed_ids, "Continental Press", "older-1", "Port strike halts container traffic for a day",
                  "A one-day strike at the port halted container traffic.", (DAY - timedelta(days=2)).replace(hour=9)))
    with session_scope(engine) as session:
        merged = Story(title="merged away", merged_into=data.summit_story, article_count=0)
        session.add(merged)
        session.flush()
        data.merged_story = merged.id
        data.stories = [s.id for s in session.query(Story).all() if s.merged_into is None]
    engine.dispose()
    return data


FEEDS_YAML = """
settings:
  timezone: UTC
feeds:
  - name: Continental Press
    url: https://news.example/0/feed.xml
    tags: [world, wire]
  - name: Meridian News
    url: https://news.example/1/feed.xml
    tags: [world]
  - name: Valley Courier
    url: https://news.example/2/feed.xml
    tags: [local]
"""
