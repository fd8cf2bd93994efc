#!/usr/bin/env python3
"""Benchmark the write path and near-duplicate detection on the labelled sets, through `aggregator replay`.

usage: python scripts/bench_replay.py [--bench-dir ../shared/bench] [--limit N]

- write path: googlenews-t replayed into a fresh SQLite database: the end-to-end rate (with the database)
  beside the dedup and clustering stage's own rate, and the SQL statements sent per article;
- boilerplate: googlenews-t with each headline's text followed by one shared sentence (". More on this story
  as it develops.") against the same headlines followed by a sentence of their own (seven made-up words):
  replay seconds of each and their ratio;
- syndication-dev (full texts with wire-copy edits): its BCubed F1, which the near-duplicate index must keep.

Prints one line per figure, then one JSON line starting with "== replay:".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from aggregator.replay import ReplayRow, _replay, read_rows  # noqa: E402
from aggregator.store import open_database  # noqa: E402

BOILERPLATE = "More on this story as it develops."
SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re".split()


def replayed(rows: list[ReplayRow]) -> tuple[float, dict, int]:
    """(seconds, report, SQL statements) of one replay into a fresh database."""
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        engine = open_database(f"sqlite:///{tmp}/replay.db")
        statements = [0]
        event.listen(engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))
        started = time.perf_counter()
        report = _replay(engine, rows, 3 * 86400, None)
        seconds = time.perf_counter() - started
        engine.dispose()
    return seconds, report, statements[0]


def with_text(rows: list[ReplayRow], ending) -> list[ReplayRow]:
    return [ReplayRow(r.id, r.title, f"{r.title}. {ending(r)}", r.published, r.source, r.url, r.story) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--limit", type=int, help="replay only the first N articles of each set")
    args = parser.parse_args()
    headlines, full_texts = args.bench_dir / "googlenews-t.jsonl", args.bench_dir / "syndication-dev.jsonl"
    if not headlines.exists() or not full_texts.exists():
        raise SystemExit(f"bench_replay: the labelled sets are not in {args.bench_dir} (see --bench-dir)")
    rows = read_rows(headlines)[: args.limit]

    _, report, statements = replayed(rows)
    figures = {
        "articles": report.articles, "end_to_end_per_s": round(report.rate),
        "cluster_per_s": round(report.cluster_rate),
        "end_to_end_share": round(report.rate / report.cluster_rate, 3),
        "statements_per_article": round(statements / report.articles, 3),
    }
    print(f"googlenews-t, {report.articles} headlines: {report.rate:.0f} articles/s end to end, "
          f"{report.cluster_rate:.0f} in the dedup and clustering stage ({figures['end_to_end_share']:.2f} of it), "
          f"{figures['statements_per_article']:.2f} SQL statements an article")

    rng = random.Random(1)
    own = {r.id: " ".join("".join(rng.choice(SYLLABLES) for _ in range(4)) for _ in range(7)).capitalize() + "."
           for r in rows}
    shared_seconds, shared, _ = replayed(with_text(rows, lambda r: BOILERPLATE))
    unique_seconds, unique, _ = replayed(with_text(rows, lambda r: own[r.id]))
    figures |= {
        "boilerplate_seconds": round(shared_seconds, 2), "unique_seconds": round(unique_seconds, 2),
        "boilerplate_ratio": round(shared_seconds / unique_seconds, 3),
        "boilerplate_bcubed_f1": round(shared.scores["bcubed_f1"], 4) if shared.scores else None,
        "unique_bcubed_f1": round(unique.scores["bcubed_f1"], 4) if unique.scores else None,
    }
    print(f"googlenews-t with one shared sentence in every text: {shared_seconds:.1f} s; with a sentence of their "
          f"own: {unique_seconds:.1f} s ({figures['boilerplate_ratio']:.2f}x)")

    syndication_rows = read_rows(full_texts)[: args.limit]
    _, syndication, _ = replayed(syndication_rows)
    figures["syndication_bcubed_f1"] = round(syndication.scores["bcubed_f1"], 4) if syndication.scores else None
    print(f"syndication-dev, {syndication.articles} full texts: BCubed F1 {figures['syndication_bcubed_f1']}")
    print("== replay: " + json.dumps(figures))


if __name__ == "__main__":
    main()
