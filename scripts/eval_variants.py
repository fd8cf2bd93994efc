#!/usr/bin/env python3
"""Score the clustering engine on variants of the labelled sets, with the default settings and ablations.

usage: python scripts/eval_variants.py [--bench-dir ../shared/bench] [--sets NAME ...] [--configs NAME ...]
                                       [--set key=value ...] [--list] [--recall]

Scores the engine on the variants of the labelled sets that scripts/variants.py builds (a setting fitted to
one file's quirks shows up as a score that holds on the file and drops on a variant of it).

The ``plain`` row is not the engine but the reference it should beat on every set: a single pass of TF-IDF
centroids with a join and a merge threshold (``plain_cluster``).

Configurations are the defaults plus one change each (``CONFIGS``); ``--set`` adds one of your own. The table
gives BCubed F1 (with --recall, also BCubed precision/recall) for each set, then the mean and the worst change
against the defaults over the sets.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_replay import in_time_order, story_of_each  # noqa: E402
from variants import variants  # noqa: E402

from aggregator.cluster import Clusterer, ClusterSettings  # noqa: E402
from aggregator.replay import score  # noqa: E402
from aggregator.text import terms  # noqa: E402

# name -> (setting overrides, engine rules switched off)
CONFIGS: dict[str, tuple[dict, frozenset]] = {
    "default": ({}, frozenset()),
    "plain": ({}, frozenset()),  # not the engine: plain_cluster, the reference every variant should beat
    "no-active-bonus": ({"active_story_threshold": 0.3}, frozenset()),
    "active=0.15": ({"active_story_threshold": 0.15}, frozenset()),
    "active=0.2": ({"active_story_threshold": 0.2}, frozenset()),
    "no-arrival-recency": ({}, frozenset({"arrival-recency"})),
    "active_arrivals=100": ({"active_arrivals": 100}, frozenset()),
    "active_arrivals=1000": ({"active_arrivals": 1000}, frozenset()),
    "coverage=0": ({"active_min_coverage": 0.0}, frozenset()),
    "coverage=0.5": ({"active_min_coverage": 0.5}, frozenset()),
    "no-convergence": ({"merge_threshold": 9.0, "fragment_merge_threshold": 9.0}, frozenset()),
    "no-fragment-fold": ({"fragment_articles": 0}, frozenset()),
    "merge=0.35": ({"merge_threshold": 0.35}, frozenset()),
    "min_shared=1": ({"story_min_shared_terms": 1}, frozenset()),
    "min_shared=3": ({"story_min_shared_terms": 3}, frozenset()),
    "threshold=0.25": ({"story_threshold": 0.25}, frozenset()),
    "threshold=0.35": ({"story_threshold": 0.35}, frozenset()),
    "title_weight=1": ({"title_weight": 1.0}, frozenset()),
    "lead_words=30": ({"lead_words": 30}, frozenset()),
    "lead_words=120": ({"lead_words": 120}, frozenset()),
    "evidence_words=60": ({"evidence_words": 60}, frozenset()),
    "no-event-evidence": ({"evidence_min_terms": 10**6}, frozenset()),
    "no-time-decay": ({"time_half_life": timedelta(0)}, frozenset()),
    # the optional semantic signal (pip install 'aggregator[semantic]'); left out of a run of every configuration
    # when the extra is not installed
    "semantic": ({"semantic": True}, frozenset()),
}
SEMANTIC_CONFIGS = {name for name, (overrides, _) in CONFIGS.items() if overrides.get("semantic")}


class AblatedClusterer(Clusterer):
    """The engine with named rules switched off (rules the settings cannot switch off on their own)."""

    def __init__(self, settings: ClusterSettings, off: frozenset = frozenset()):
        super().__init__(settings)
        self.off = off

    def _active(self, story) -> bool:
        if "arrival-recency" in self.off and not self.timed():
            return False
        return super()._active(story)


# ---- a plain reference ---------------------------------------------------------------------------------------

PLAIN = "plain"
# a middle of a sweep (0.2-0.35 x 0.4-0.6) over gn, gn-shuf1, gn-rev, synd-titles, synd-ledes and feeds
PLAIN_JOIN, PLAIN_MERGE = 0.25, 0.4


def plain_cluster(rows: list[dict], join: float = PLAIN_JOIN, merge: float = PLAIN_MERGE,
                  lead_words: int = 60) -> dict[str, str]:
    """The plain method the engine must beat: one pass, each article's TF-IDF vector (title twice, the lead's
    first ``lead_words`` words; IDF as of its arrival) joins the cluster with the closest centroid when the cosine
    reaches ``join``, else starts one; the cluster it joined then absorbs the closest other centroid reaching
    ``merge``. No time, no recency, no other rule; the engine's tokenizer (text.terms)."""
    df: Counter = Counter()
    documents = 0
    centroids: dict[int, dict[str, float]] = {}
    norms: dict[int, float] = {}
    postings: dict[str, set[int]] = defaultdict(set)
    members: dict[int, list[str]] = {}

    def closest(vector: dict[str, float], skip: int | None = None) -> tuple[float, int | None]:
        dots: dict[int, float] = defaultdict(float)
        for term, weight in vector.items():
            for cid in postings.get(term, ()):
                dots[cid] += weight * centroids[cid][term]
        dots.pop(skip, None)
        size = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        return max(((dot / (size * norms[cid]), cid) for cid, dot in dots.items()), default=(0.0, None))

    def add(cid: int, vector: dict[str, float]) -> None:
        centroid = centroids[cid]
        for term, weight in vector.items():
            centroid[term] = centroid.get(term, 0.0) + weight
            postings[term].add(cid)
        norms[cid] = math.sqrt(sum(w * w for w in centroid.values())) or 1.0

    for _, row in in_time_order(rows):
        counts = Counter(terms(row["title"]) * 2)
        counts.update(terms(" ".join((row["text"] or "").split()[:lead_words])))
        documents += 1
        df.update(counts.keys())
        vector = {t: (1 + math.log(c)) * (math.log((documents + 1) / (df[t] + 1)) + 1) for t, c in counts.items()}
        cosine, cid = closest(vector)
        if cid is None or cosine < join:
            cid = documents  # a fresh id
            centroids[cid], members[cid] = {}, []
        add(cid, vector)
        members[cid].append(row["id"])
        cosine, other = closest(centroids[cid], skip=cid)
        if other is not None and cosine >= merge:
            absorbed = centroids.pop(other)
            for term in absorbed:
                postings[term].discard(other)
            add(cid, absorbed)
            members[cid] += members.pop(other)
    return {row_id: str(cid) for cid, ids in members.items() for row_id in ids}


# ---- replay -------------------------------------------------------------------------------------------------

def cluster(rows: list[dict], settings: ClusterSettings, off: frozenset = frozenset()) -> dict[str, str]:
    """The engine's story of each row, replayed in time order (see engine_replay.in_time_order), merges applied."""
    timed = in_time_order(rows)
    engine = AblatedClusterer(settings, off)
    engine.prepare((row["title"], row["text"] or "") for _, row in timed)  # the semantic signal's batches
    return {timed[i][1]["id"]: str(s) for i, s in story_of_each(engine, timed).items()}


def evaluate(rows: list[dict], overrides: dict, off: frozenset, plain: bool = False) -> dict[str, float]:
    predicted = plain_cluster(rows) if plain else cluster(rows, ClusterSettings(**overrides), off)
    return score({row["id"]: str(row["story"]) for row in rows}, predicted)


def parse_override(text: str) -> dict:
    key, _, value = text.partition("=")
    if value in ("true", "false"):
        return {key: value == "true"}
    if value.endswith("h"):  # a time setting, in hours
        return {key: timedelta(hours=float(value[:-1]))}
    return {key: float(value) if "." in value else int(value)}


def table(results: dict[str, dict[str, dict]], sets: list[str], recall: bool) -> list[str]:
    width = max(len(name) for name in results) + 1
    cell = max(19 if recall else 13, *(len(s) + 1 for s in sets))
    head = "".join(f"{name:>{cell}}" for name in sets)
    lines = [f"{'config':<{width}}{head}{'mean':>9}{'worst d':>9}"]
    base = results.get("default")
    for name, by_set in results.items():
        cells = []
        for s in sets:
            f = by_set[s]["bcubed_f1"]
            if recall:
                cells.append(f"{f:.4f} {by_set[s]['bcubed_p']:.3f}/{by_set[s]['bcubed_r']:.3f}".rjust(cell))
            else:
                cells.append(f"{f:{cell}.4f}")
        mean = sum(by_set[s]["bcubed_f1"] for s in sets) / len(sets)
        worst = min(by_set[s]["bcubed_f1"] - base[s]["bcubed_f1"] for s in sets) if base else 0.0
        lines.append(f"{name:<{width}}{''.join(cells)}{mean:9.4f}{worst:+9.4f}")
    return lines


def _semantic_missing() -> bool:
    from aggregator.semantic import missing_packages

    return bool(missing_packages())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--sets", nargs="*", help="variant names (default: all)")
    parser.add_argument("--configs", nargs="*", help="configuration names (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="an extra configuration: the defaults with these settings changed")
    parser.add_argument("--list", action="store_true", help="list the variants and configurations, then stop")
    parser.add_argument("--recall", action="store_true", help="also print BCubed precision/recall")
    args = parser.parse_args(argv)
    sets = variants(args.bench_dir)
    if not sets:
        print(f"eval_variants: no labelled sets in {args.bench_dir}", file=sys.stderr)
        return 2
    configs = dict(CONFIGS)
    for extra in args.set:
        overrides: dict = {}
        for part in extra.split(","):
            overrides.update(parse_override(part))
        configs[extra] = (overrides, frozenset())
    if args.list:
        print("sets:", " ".join(f"{name}({len(rows)})" for name, rows in sets.items()))
        print("configs:", " ".join(configs))
        return 0
    chosen_sets = args.sets or list(sets)
    chosen = args.configs or list(configs)
    if not args.configs and _semantic_missing():
        chosen = [name for name in chosen if name not in SEMANTIC_CONFIGS]
    if "default" not in chosen:
        chosen = ["default", *chosen]
    chosen += [extra for extra in args.set if extra not in chosen]
    unknown = [n for n in chosen_sets if n not in sets] + [n for n in chosen if n not in configs]
    if unknown:
        print(f"eval_variants: unknown set or configuration: {', '.join(unknown)}", file=sys.stderr)
        return 2
    results: dict[str, dict[str, dict]] = {}
    for name in chosen:
        overrides, off = configs[name]
        started = time.perf_counter()
        results[name] = {s: evaluate(sets[s], overrides, off, name == PLAIN) for s in chosen_sets}
        print(f"# {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print("\n".join(table(results, chosen_sets, args.recall)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
