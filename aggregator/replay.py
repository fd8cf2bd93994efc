"""Replay labelled articles through the production dedup and clustering code, and score the result.

Input: one JSON object a line with ``id``, ``title``, ``text`` (or null), ``published`` (ISO 8601 or null),
``source``, ``url`` and optionally ``story``, the true story. Articles are replayed in publication order
(articles without a time keep their place in the file).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from .ingest import Incoming, Ingestor, settings_for
from .models import Article, utcnow
from .parse import canonical_url, parse_time
from .store import open_database, session_scope

COMMIT_EVERY = 500  # articles a transaction (the daemon writes a feed's new articles in batches too)

# Told (articles replayed so far, articles in all) after each article: a caller's progress display.
Progress = Callable[[int, int], None]


class ReplayError(ValueError):
    """A line of the replay file is not a valid article."""


@dataclass
class ReplayRow:
    id: str
    title: str
    text: str
    published: datetime | None
    source: str
    url: str | None
    story: str | None


@dataclass
class ReplayReport:
    articles: int
    stories: int
    predictions: dict[str, int]
    seconds: float
    cluster_seconds: float
    scores: dict[str, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds else 0.0

    @property
    def cluster_rate(self) -> float:
        return self.articles / self.cluster_seconds if self.cluster_seconds else 0.0


REQUIRED_FIELDS = ("id", "title", "source")
LAST_YEAR = 9000  # the story window and arrival times are added to a time: 9999-12-31 would overflow
MAX_REPORTED = 5  # problems named in the error; the rest are counted


def read_rows(path: str | Path) -> list[ReplayRow]:
    """Every article of a replay file, checked before any is replayed: a bad line raises :class:`ReplayError`
    naming the file, the line and the field (and how many other lines have problems)."""
    rows: list[ReplayRow] = []
    first_line: dict[str, int] = {}
    problems: list[str] = []
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, 1):
            try:
                line = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                problems.append(f"{number}: not UTF-8 text ({exc.reason} at byte {exc.start})")
                continue
            if not line.strip():
                continue
            try:
                row = _row(line)
            except ReplayError as exc:
                problems.append(f"{number}: {exc}")
                continue
            if row.id in first_line:
                problems.append(f"{number}: id {row.id!r} appears twice (first on line {first_line[row.id]})")
                continue
            first_line[row.id] = number
            rows.append(row)
    if problems:
        more = len(problems) - MAX_REPORTED
        listed = "; line ".join(problems[:MAX_REPORTED]) + (f" (and {more} more problems)" if more > 0 else "")
        raise ReplayError(f"{path}:{listed}")
    if not rows:
        raise ReplayError(f"{path}: no articles in the file")
    return rows


def _row(line: str) -> ReplayRow:
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ReplayError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ReplayError(f"expected a JSON object, got {_kind(raw)}")
    missing = [name for name in REQUIRED_FIELDS if name not in raw]
    if missing:
        raise ReplayError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    published = _text(raw, "published")
    when = parse_time(published) if published else None
    if published and when is None:
        raise ReplayError(f"field 'published' is not an ISO 8601 time: {published[:60]!r}")
    if when is not None and when.year >= LAST_YEAR:
        raise ReplayError(f"field 'published' is past the year {LAST_YEAR}: {published[:60]!r}")
    identity = _text(raw, "id", numbers=True, null=False)
    if not identity.strip():
        raise ReplayError("field 'id' is empty")
    return ReplayRow(
        id=identity,
        title=_text(raw, "title", null=False),
        text=_text(raw, "text") or "",
        published=when,
        source=_text(raw, "source") or "",
        url=_text(raw, "url") or None,
        story=_text(raw, "story", numbers=True),
    )


def _text(raw: dict, name: str, numbers: bool = False, null: bool = True) -> str | None:
    """Field ``name`` as text: a string (or a number where ``numbers``); None when absent or null and ``null``."""
    value = raw.get(name)
    if value is None and null:
        return None
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    wanted = ("a string or a number" if numbers else "a string") + (" or null" if null else "")
    raise ReplayError(f"field {name!r} must be {wanted}, got {_kind(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def in_time_order(rows: list[ReplayRow]) -> list[ReplayRow]:
    """Publication order; an article without a time arrives right after the one before it in the file."""
    last = datetime(1970, 1, 1)
    keyed = []
    for index, row in enumerate(rows):
        last = row.published or last
        keyed.append((last, index, row))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [row for _, _, row in keyed]


def _first_arrival(rows: list[ReplayRow], as_of: datetime | None = None) -> datetime:
    """The clock the replay's arrivals start from: ``as_of`` when given (a naive UTC time: a dump of old news
    dated as of its period); else a second before the earliest publication time, so that an article without one,
    stamped right after the one before it, reads as of the file's period; else the replay's own time (a file
    without any: its stories then read as first seen today, not in 1970)."""
    if as_of is not None:
        return as_of
    published = [row.published for row in rows if row.published is not None]
    if published:
        return min(published) - timedelta(seconds=1)
    return utcnow().replace(microsecond=0)


def _source_key(row: ReplayRow) -> str:
    return f"replay:{row.source or 'unknown'}"


def _incoming(row: ReplayRow, arrival: datetime) -> Incoming:
    source = row.source or "unknown"
    return Incoming(
        source_key=_source_key(row),
        external_id=row.id,
        source=source,
        title=row.title,
        text=row.text,
        text_source="feed" if row.text else "title",
        url=row.url,
        canonical_url=canonical_url(row.url),
        published=row.published,
        fetched_at=arrival,
    )


def replay(
    rows: list[ReplayRow],
    database: str | None = None,
    window_seconds: float = 3 * 86400,
    progress: Progress | None = None,
    semantic: bool = False,
    as_of: datetime | None = None,
) -> ReplayReport:
    """Replay ``rows`` into ``database`` (a temporary SQLite file by default) and return the predictions.

    ``progress(done, total)`` is called after each article, for a caller that shows how far it got;
    ``semantic`` turns the semantic signal on (settings ``semantic_clustering``); ``as_of`` (naive UTC) is when
    the first article without a publication time arrives, the next ones a microsecond apart (by default a second
    before the file's earliest time, or now for a file without any).
    """
    with tempfile.TemporaryDirectory(prefix="aggregator-replay-") as tmp:
        engine = open_database(database or f"sqlite:///{tmp}/replay.db")
        try:
            return _replay(engine, rows, window_seconds, progress, semantic, as_of)
        finally:
            engine.dispose()


def _replay(engine, rows: list[ReplayRow], window_seconds: float, progress: Progress | None,
            semantic: bool = False, as_of: datetime | None = None) -> ReplayReport:
    if already := _already_stored(engine, rows):
        raise ReplayError(f"the database already holds {already} of these {len(rows)} articles (replayed before?): "
                          "replay into a new database, or leave out --database for a temporary one")
    ingestor = Ingestor(engine, settings_for(window_seconds, semantic))
    ingestor.reload()
    ordered = in_time_order(rows)
    arrival = _first_arrival(rows, as_of)
    predictions: dict[str, int] = {}
    ids: dict[int, str] = {}
    started = time.perf_counter()
    done = 0

    def told(_result) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(ordered))

    for start in range(0, len(ordered), COMMIT_EVERY):
        batch = ordered[start : start + COMMIT_EVERY]
        items = []
        for row in batch:
            arrival = max(arrival, row.published or arrival) + timedelta(microseconds=1)
            items.append(_incoming(row, arrival))

        with session_scope(engine) as session:
            results = ingestor.ingest_batch(session, items, each=told)
        for row, stored in zip(batch, results, strict=True):
            if stored is not None:
                ids[stored.article_id] = row.id
    seconds = time.perf_counter() - started
    # Stories merge after their first articles were assigned: read the final membership back.
    with Session(engine) as session:
        for article_id, story_id in session.exec(select(Article.id, Article.story_id)).all():
            if article_id in ids:
                predictions[ids[article_id]] = story_id
    report = ReplayReport(
        articles=len(predictions),
        stories=len(set(predictions.values())),
        predictions=predictions,
        seconds=seconds,
        cluster_seconds=ingestor.cluster_seconds,
    )
    gold = {row.id: row.story for row in rows if row.story is not None}
    if gold and len(gold) == len(rows):
        report.scores = score(gold, {k: str(v) for k, v in predictions.items()})
    elif gold:
        report.extra["unscored"] = f"no scores: {len(rows) - len(gold)} of {len(rows)} articles have no 'story'"
    return report


def _already_stored(engine, rows: list[ReplayRow]) -> int:
    """How many of ``rows`` the database holds already (a replay into the database it filled before)."""
    with Session(engine) as session:
        stored = set(session.exec(select(Article.source_key, Article.external_id)
                                  .where(Article.source_key.startswith("replay:"))).all())
    if not stored:
        return 0
    return sum((_source_key(row), row.id) in stored for row in rows)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(gold: dict[str, str], predicted: dict[str, str]) -> dict[str, float]:
    """Pairwise and BCubed precision/recall/F1, NMI and cluster counts of a clustering against gold labels."""
    joint = Counter((gold[d], predicted[d]) for d in gold)
    gold_sizes, pred_sizes, n = Counter(gold.values()), Counter(predicted[d] for d in gold), len(gold)
    true_pairs = sum(_pairs(v) for v in joint.values())
    pred_pairs = sum(_pairs(v) for v in pred_sizes.values())
    gold_pairs = sum(_pairs(v) for v in gold_sizes.values())

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    pp = true_pairs / pred_pairs if pred_pairs else 0.0
    pr = true_pairs / gold_pairs if gold_pairs else 0.0
    bp = sum(v * v / pred_sizes[p] for (g, p), v in joint.items()) / n
    br = sum(v * v / gold_sizes[g] for (g, p), v in joint.items()) / n
    mi = sum(v / n * math.log(v * n / (gold_sizes[g] * pred_sizes[p])) for (g, p), v in joint.items())
    hg = -sum(v / n * math.log(v / n) for v in gold_sizes.values())
    hp = -sum(v / n * math.log(v / n) for v in pred_sizes.values())
    return {
        "pairwise_p": pp, "pairwise_r": pr, "pairwise_f1": f1(pp, pr),
        "bcubed_p": bp, "bcubed_r": br, "bcubed_f1": f1(bp, br),
        "nmi": 2 * mi / (hg + hp) if hg + hp else 1.0,
        "clusters": float(len(pred_sizes)), "gold_clusters": float(len(gold_sizes)), "documents": float(n),
    }


def write_predictions(report: ReplayReport, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for article_id, story in report.predictions.items():
            out.write(json.dumps({"id": article_id, "story": story}) + "\n")


def summary_lines(report: ReplayReport) -> Iterator[str]:
    yield f"articles {report.articles}, predicted stories {report.stories}"
    if "unscored" in report.extra:
        yield report.extra["unscored"]
    s = report.scores
    if s:
        yield f"gold stories {int(s['gold_clusters'])}"
        yield f"pairwise  P {s['pairwise_p']:.4f}  R {s['pairwise_r']:.4f}  F1 {s['pairwise_f1']:.4f}"
        yield f"BCubed    P {s['bcubed_p']:.4f}  R {s['bcubed_r']:.4f}  F1 {s['bcubed_f1']:.4f}"
        yield f"NMI {s['nmi']:.4f}"
    yield (
        f"speed: {report.rate:.0f} articles/s end to end (with the database), "
        f"{report.cluster_rate:.0f} articles/s in the dedup and clustering stage"
    )
    if s:
        yield f"bcubed_f1={s['bcubed_f1']:.4f}"
