#!/usr/bin/env python3
"""Where the clustering engine loses BCubed precision and recall on one variant of the labelled sets.

usage: python scripts/cluster_errors.py [--bench-dir ../shared/bench] [--set gn] [--top 10] [--big 10]
                                       [--setting KEY=VALUE ...]

A score says how much is lost, not what kind of error loses it: a rule that joins fragments cannot help a set
whose loss is two events of one subject told as one story. The loss is counted in articles (BCubed: an
article's precision is the share of its story that tells its event, its recall the share of its event in its
story; one minus each is what the article loses), and split by kind:

- precision: lost in stories mixing two events that each hold at least ``--big`` of its articles (events of one
  subject told as one story), or lost to strays (a few articles of other events);
- recall: lost by articles left alone (a story of their own), in fragments of fewer than ``--big`` articles, or
  in parts of ``--big`` or more (an event told as two big stories).

Then the events split the most and the stories mixing the most, with a few headlines of each part.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_variants import cluster, parse_override  # noqa: E402
from variants import variants  # noqa: E402

from aggregator.cluster import ClusterSettings  # noqa: E402


def losses(gold: dict[str, str], predicted: dict[str, str], big: int = 10) -> dict[str, float]:
    """BCubed precision and recall lost, in articles, by kind of error (see the module's docstring)."""
    joint = Counter((gold[d], predicted[d]) for d in gold)
    event_sizes, story_sizes = Counter(gold.values()), Counter(predicted[d] for d in gold)
    parts: dict[str, list[int]] = defaultdict(list)  # story -> the sizes of its events' parts, largest first
    for (_, story), count in joint.items():
        parts[story].append(count)
    mixed = {story for story, sizes in parts.items() if len(sizes) > 1 and sorted(sizes)[-2] >= big}
    out = dict.fromkeys(["precision:mixed-events", "precision:strays", "recall:alone", "recall:fragments",
                         "recall:big-parts"], 0.0)
    for (event, story), count in joint.items():
        out["precision:mixed-events" if story in mixed else "precision:strays"] += count * (
            1 - count / story_sizes[story])
        kind = "alone" if story_sizes[story] == 1 else "fragments" if count < big else "big-parts"
        out[f"recall:{kind}"] += count * (1 - count / event_sizes[event])
    return out


def report(rows: list[dict], predicted: dict[str, str], top: int = 10, big: int = 10, examples: int = 2) -> list[str]:
    """The loss by kind, then the ``top`` events split the most and stories mixing the most."""
    gold = {row["id"]: str(row["story"]) for row in rows}
    title = {row["id"]: row["title"] for row in rows}
    by_event: dict[str, list[str]] = defaultdict(list)
    by_story: dict[str, list[str]] = defaultdict(list)
    for row_id in gold:
        by_event[gold[row_id]].append(row_id)
        by_story[predicted[row_id]].append(row_id)
    lines = [f"{len(gold)} articles, {len(by_event)} events, {len(by_story)} stories; loss in articles:"]
    lines += [f"  {kind:<24}{lost:8.1f}" for kind, lost in losses(gold, predicted, big).items()]

    def part_lines(ids: list[str], key: dict[str, str]) -> list[str]:
        counts = Counter(key[i] for i in ids)
        return [f"    {count:4d} of {name}: " + " / ".join([title[i] for i in ids if key[i] == name][:examples])
                for name, count in counts.most_common(4)]

    def lost(ids: list[str], key: dict[str, str]) -> float:
        counts = Counter(key[i] for i in ids)
        return sum(c * (1 - c / len(ids)) for c in counts.values())

    lines.append("events split the most (articles lost, parts: stories):")
    for event, ids in sorted(by_event.items(), key=lambda kv: (-lost(kv[1], predicted), kv[0]))[:top]:
        lines.append(f"  event {event}: {len(ids)} articles, {lost(ids, predicted):.1f} lost")
        lines += part_lines(ids, predicted)
    lines.append("stories mixing the most (articles lost, parts: events):")
    for story, ids in sorted(by_story.items(), key=lambda kv: (-lost(kv[1], gold), kv[0]))[:top]:
        lines.append(f"  story {story}: {len(ids)} articles, {lost(ids, gold):.1f} lost")
        lines += part_lines(ids, gold)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--set", default="gn", help="a variant of scripts/eval_variants.py (default: gn)")
    parser.add_argument("--top", type=int, default=10, help="events and stories listed (default: 10)")
    parser.add_argument("--big", type=int, default=10, help="articles that make a part big (default: 10)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting other than the default (as eval_variants.py --set), repeatable")
    args = parser.parse_args(argv)
    sets = variants(args.bench_dir)
    if args.set not in sets:
        print(f"cluster_errors: no set {args.set!r} in {args.bench_dir} (have: {', '.join(sets) or 'none'})",
              file=sys.stderr)
        return 2
    rows = sets[args.set]
    overrides: dict = {}
    for text in args.setting:
        overrides.update(parse_override(text))
    print("\n".join(report(rows, cluster(rows, ClusterSettings(**overrides)), args.top, args.big)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
