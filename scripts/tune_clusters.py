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
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import everyday_words, renamed  # noqa: E402

from aggregator.cluster import Clusterer, ClusterSettings  # noqa: E402
from aggregator.parse import parse_time  # noqa: E402
from aggregator.replay import score  # noqa: E402


def run(path, kw, show_merges=False, prefill=0, profile=False):
    rows = [json.loads(line) for line in open(path)]
    base = datetime(2026, 1, 1)
    for r in rows:
        r["_t"] = parse_time(r["published"]) or base
    rows.sort(key=lambda r: r["_t"])
    c = Clusterer(ClusterSettings(**kw))
    next_id = 0
    if prefill:
        common = everyday_words(rows)
        k, n = 0, 0
        while n < prefill:
            k += 1
            story_of = {}
            for r in rows:
                if n >= prefill:
                    break
                f = c.features(renamed(r["title"], k, common), renamed(r["text"], k, common),
                               r["_t"] - timedelta(hours=1), "")
                d = c.decide(f)
                sid = d.story_id or story_of.setdefault(r["story"], None)
                if sid is None:
                    next_id += 1
                    sid = story_of[r["story"]] = next_id
                c.add(-1 - n, f, sid)
                n += 1
    members = defaultdict(list)
    story_of_article = {}
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        f = c.features(r["title"], r["text"] or "", r["_t"], r["source"] or "")
        d = c.decide(f)
        sid = d.story_id
        if sid is None:
            next_id += 1
            sid = next_id
        if d.merge_story_ids:  # as the pipeline does: the oldest id survives
            ids = sorted({sid, *d.merge_story_ids})
            sid = ids[0]
            for other in ids[1:]:
                if show_merges:
                    a = [rows[j]["title"] for j in members[sid][-3:]] + [r["title"]]
                    b = [rows[j]["title"] for j in members[other][-3:]]
                    same = {rows[j]["story"] for j in members[sid]} == {rows[j]["story"] for j in members[other]}
                    print(f"merge {len(members[sid])}+{len(members[other])} same={same}\n  {a}\n  {b}")
                c.merge(sid, other)
                for j in members.pop(other, []):
                    story_of_article[j] = sid
                    members[sid].append(j)
        c.add(i, f, sid)
        members[sid].append(i)
        story_of_article[i] = sid
    dt = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    gold = {r["id"]: str(r["story"]) for r in rows}
    pred = {rows[i]["id"]: str(s) for i, s in story_of_article.items()}
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
