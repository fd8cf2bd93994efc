"""The error breakdown splits the BCubed loss by kind of error (made-up labels, not ../shared)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import cluster_errors  # noqa: E402


def _labels():
    """Events a and b (12 articles each) told as one story with a fragment of b and a stray d beside it; the
    three articles of c each alone."""
    gold, predicted = {}, {}
    for event, story, count in [("a", "s1", 12), ("b", "s1", 10), ("b", "s2", 2), ("d", "s2", 1)]:
        for k in range(count):
            gold[f"{event}{story}{k}"], predicted[f"{event}{story}{k}"] = event, story
    for k in range(3):
        gold[f"c{k}"], predicted[f"c{k}"] = "c", f"alone{k}"
    return gold, predicted


def test_losses_are_split_by_kind_of_error():
    lost = cluster_errors.losses(*_labels(), big=10)
    assert lost["precision:mixed-events"] == pytest.approx(12 * 10 / 22 + 10 * 12 / 22)
    assert lost["precision:strays"] == pytest.approx(2 * 1 / 3 + 1 * 2 / 3)
    assert lost["recall:big-parts"] == pytest.approx(10 * 2 / 12)
    assert lost["recall:fragments"] == pytest.approx(2 * 10 / 12)
    assert lost["recall:alone"] == pytest.approx(3 * 2 / 3)


def test_report_lists_the_most_split_event_and_the_most_mixed_story_first():
    gold, predicted = _labels()
    rows = [{"id": row_id, "title": f"headline {row_id}", "story": event} for row_id, event in gold.items()]
    lines = cluster_errors.report(rows, predicted, top=1)
    assert lines[0].startswith("28 articles, 4 events, 5 stories")
    split = lines.index("events split the most (articles lost, parts: stories):")
    assert lines[split + 1].startswith("  event b: 12 articles")
    mixed = lines.index("stories mixing the most (articles lost, parts: events):")
    assert lines[mixed + 1].startswith("  story s1: 22 articles")
