"""Replay a labelled file (shared/bench replay format) through the clustering engine and score it.

usage: python scripts/tune_clusters.py FILE [key=value ...] [--merges] [--speed N] [--profile]
    key=value   overrides a ClusterSettings field (numbers only)
    --merges    print every story merge with the headlines of both sides
    --speed N   first index N articles (the file's rows again with their rarer words renamed, as other stories),
                then time the replay against that full index
    --profile   print where the timed replay spends its time
Scores as `aggregator replay` does, on the engine alone (no database);
speed is features + decide + add, articles per second.
"""

import cProfile
import json
import pstats
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import everyday_words, renamed  # noqa: E402
from engine_replay import in_time_order, story_of_each  # noqa: E402

from aggregator.cluster import Clusterer, ClusterSettings  # noqa: E402
from aggregator.replay import score  # noqa: E402


def run(path, kw, show_merges=False, prefill=0, profile=False):
    rows = [json.loads(line) for line in open(path)]
    timed = in_time_order(rows)
    c = Clusterer(ClusterSettings(**kw))
    next_id = 0
    if prefill:
        common = everyday_words(rows)
        k, n = 0, 0
        while n < prefill:
            k += 1
            story_of = {}
            for when, r in timed:
                if n >= prefill:
                    break
                f = c.features(renamed(r["title"], k, common), renamed(r["text"], k, common),
                               when - timedelta(hours=1), "")
                d = c.decide(f)
                sid = d.story_id or story_of.setdefault(r["story"], None)
                if sid is None:
                    next_id += 1
                    sid = story_of[r["story"]] = next_id
                c.add(-1 - n, f, sid)
                n += 1
    ordered = [r for _, r in timed]

    def print_merge(i, sid, other, members):
        a = [ordered[j]["title"] for j in members[sid][-3:]] + [ordered[i]["title"]]
        b = [ordered[j]["title"] for j in members[other][-3:]]
        same = {ordered[j]["story"] for j in members[sid]} == {ordered[j]["story"] for j in members[other]}
        print(f"merge {len(members[sid])}+{len(members[other])} same={same}\n  {a}\n  {b}")

    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    story_of_article = story_of_each(c, timed, next_id, print_merge if show_merges else None)
    dt = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    gold = {r["id"]: str(r["story"]) for r in rows}
    pred = {ordered[i]["id"]: str(s) for i, s in story_of_article.items()}
    s = score(gold, pred)
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}
    print(path.split("/")[-1], kw, figures, f"{len(rows) / dt:.0f}/s", f"(index of {prefill} first)" if prefill else "")
    return s


if __name__ == "__main__":
    args = sys.argv[1:]
    show = "--merges" in args
    profile = "--profile" in args
    prefill = 0
    if "--speed" in args:
        prefill = int(args[args.index("--speed") + 1])
        del args[args.index("--speed") : args.index("--speed") + 2]
    kw = {}
    for a in args[1:]:
        if a.startswith("--"):
            continue
        k, v = a.split("=")
        kw[k] = float(v) if "." in v else int(v)
    run(args[0], kw, show, prefill, profile)
