"""Replay labelled rows (shared/bench replay format, as dicts) through the clustering engine alone, no database.

Stories are assigned as the ingest pipeline does (features, decide, add; merges keep the oldest id), so that
eval_variants.py and tune_clusters.py score the same replay. ``aggregator.replay`` replays through the database
and the ingest code instead: slower, and without access to the engine between articles.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.cluster import Clusterer  # noqa: E402
from aggregator.parse import parse_time  # noqa: E402

UNTIMED = datetime(2026, 1, 1)  # the time given to a row without one

# Told (index of the article being added, surviving story, absorbed story, members of each story so far)
# just before two stories merge: a caller that shows merges.
OnMerge = Callable[[int, int, int, dict[int, list[int]]], None]


def in_time_order(rows: list[dict]) -> list[tuple[datetime, dict]]:
    """(time, row) in time order; a row without a time counts as UNTIMED; equal times keep their file order."""
    timed = [(parse_time(row["published"]) or UNTIMED, index, row) for index, row in enumerate(rows)]
    timed.sort(key=lambda item: (item[0], item[1]))
    return [(when, row) for when, _, row in timed]


def story_of_each(engine: Clusterer, timed: Sequence[tuple[datetime, dict]], last_id: int = 0,
                  on_merge: OnMerge | None = None) -> dict[int, int]:
    """The final story of each row, by its place in ``timed``, after adding them all to ``engine`` in that order
    (article ids are those places); new stories are numbered on from ``last_id``."""
    members: dict[int, list[int]] = defaultdict(list)
    story_of: dict[int, int] = {}
    for index, (when, row) in enumerate(timed):
        feats = engine.features(row["title"], row["text"] or "", when, row["source"] or "")
        decision = engine.decide(feats)
        story = decision.story_id
        if story is None:
            last_id += 1
            story = last_id
        if decision.merge_story_ids:  # as the pipeline does: the oldest id survives
            ids = sorted({story, *decision.merge_story_ids})
            story = ids[0]
            for other in ids[1:]:
                if on_merge is not None:
                    on_merge(index, story, other, members)
                engine.merge(story, other)
                for member in members.pop(other, []):
                    story_of[member] = story
                    members[story].append(member)
        engine.add(index, feats, story)
        members[story].append(index)
        story_of[index] = story
    return story_of
