"""The variant suite builds its variants as described and prints one table (tiny made-up sets, not ../shared)."""

import json
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import eval_variants  # noqa: E402
import variants  # noqa: E402

HEADLINES = [
    ("quake strikes coastal city magnitude", "q"), ("coastal city quake toll rises", "q"),
    ("rescuers search rubble after coastal quake", "q"), ("central bank raises rates inflation", "b"),
    ("bank rate rise surprises markets", "b"), ("inflation pushes central bank rate higher", "b"),
]


def _rows():
    return [{"id": f"h{i}", "title": t, "text": None, "published": None, "source": None, "url": None, "story": s}
            for i, (t, s) in enumerate(HEADLINES * 3)]


def _article(story, k, town="Riverton", mayor="Alvarez", words=320, paragraphs=6):
    body = "\n\n".join(
        f"Paragraph {p} of the report on the flood near {town}, where Mayor {mayor} met 1200 residents "
        + " ".join(["water rose over the levee and crews worked through the night"] * (words // 60))
        for p in range(paragraphs))
    return {"id": f"{story}-{k}", "title": f"Flood hits {town} {story}", "text": body,
            "published": "2026-10-16T06:00:00+00:00", "source": "Ledger", "url": None, "story": story}


def test_fake_times_keep_each_story_within_two_days_in_time_order():
    rows = variants.fake_times(_rows(), seed=3)
    times = [datetime.fromisoformat(r["published"]) for r in rows]
    assert times == sorted(times)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in _rows())
    for story in ("q", "b"):
        mine = [t for t, r in zip(times, rows, strict=True) if r["story"] == story]
        assert max(mine) - min(mine) <= timedelta(hours=48)


def test_shuffled_and_untimed_keep_ids_and_labels():
    rows = variants.untimed(variants.shuffled(_rows(), 1))
    assert {(r["id"], r["story"]) for r in rows} == {(r["id"], r["story"]) for r in _rows()}
    assert all(r["published"] is None for r in rows)
    assert [r["id"] for r in rows] != [r["id"] for r in _rows()]


def test_capped_keeps_at_most_so_many_rows_of_each_story_in_order():
    rows = variants.capped(_rows(), most=2, seed=1)
    assert Counter(r["story"] for r in rows) == {"q": 2, "b": 2}
    order = [r["id"] for r in _rows()]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), key=order.index)


def test_twins_make_two_untimed_events_a_base_with_other_names_and_figures():
    rows = variants.twins([_article("flood", 0), _article("other", 0, "Lakeside", "Okafor")], seed=2)
    stories = {r["story"] for r in rows}
    assert stories == {"flood/a", "flood/b", "other/a", "other/b"}
    assert all(r["published"] is None for r in rows)
    second = [r for r in rows if r["story"] == "flood/b"]
    assert second and all("Riverton" not in r["text"] and "1200" not in r["text"] for r in second)
    assert all("Riverton" in r["text"] for r in rows if r["story"] == "flood/a")


def test_twins_of_one_subject_keep_its_most_used_names():
    rows = variants.twins([_article("flood", 0, mayor="Alvarez"), _article("other", 0, "Lakeside", "Okafor")],
                               seed=2, keep=1)
    second = [r for r in rows if r["story"] == "flood/b"]
    # Alvarez, Mayor and Riverton are each used six times: the first in order stays, the others change
    assert second and all("Alvarez" in r["text"] and "Riverton" not in r["text"] for r in second)


def test_twins_told_in_own_words_share_no_paragraph_and_keep_their_figures():
    bases = [_article("flood", 0, paragraphs=8), _article("other", 0, "Lakeside", "Okafor", paragraphs=8)]
    rows = variants.twins(bases, seed=2, told="parts")
    by_event: dict[str, list[dict]] = {}
    for row in rows:
        by_event.setdefault(row["story"], []).append(row)
    assert set(by_event) == {"flood/a", "flood/b", "other/a", "other/b"}
    for told in by_event.values():
        assert len(told) == 2  # four paragraphs an event: two outlets
        first, second = ({p.split(" of the report")[0] for p in row["text"].split("\n\n")} for row in told)
        assert first and second and not first & second
    second_event = " ".join(row["text"] for row in by_event["flood/b"])
    figures = {word for word in second_event.split() if word.isdigit() and len(word) == 4}
    assert len(figures) == 1 and "1200" not in figures  # 1200 became one other figure, in every telling
    # the headline named nothing renamed ("Flood hits Riverton flood": Riverton is renamed), so it changed
    assert {r["title"] for r in by_event["flood/a"]}.isdisjoint(r["title"] for r in by_event["flood/b"])
    # a headline naming nothing: the second event is headed by its own first sentence
    plain = [{**base, "title": "Water rises over the levee again tonight"} for base in bases]
    second_titles = {r["title"] for r in variants.twins(plain, seed=2, told="parts") if r["story"] == "flood/b"}
    assert second_titles and all("of the report on the flood" in title for title in second_titles)


def test_table_scores_every_set_with_the_defaults(tmp_path, capsys):
    with open(tmp_path / "googlenews-t.jsonl", "w") as out:
        for row in _rows():
            out.write(json.dumps(row) + "\n")
    code = eval_variants.main(["--bench-dir", str(tmp_path), "--configs", "no-fragment-fold"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["config", "gn", "gn-shuf1"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "no-fragment-fold"]
    assert all(0.0 < float(cell) <= 1.0 for cell in lines[1].split()[1:8])


def test_missing_sets_and_unknown_names_are_one_line_errors(tmp_path, capsys):
    assert eval_variants.main(["--bench-dir", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith("eval_variants: no labelled sets")
    (tmp_path / "googlenews-t.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()))
    assert eval_variants.main(["--bench-dir", str(tmp_path), "--sets", "nope"]) == 2
    assert "unknown set or configuration: nope" in capsys.readouterr().err


def test_plain_reference_groups_rewordings_and_keeps_topics_apart():
    rows = _rows()
    predicted = eval_variants.plain_cluster(rows)
    assert {predicted[r["id"]] for r in rows if r["title"] == HEADLINES[0][0]} == {predicted["h0"]}
    assert predicted["h0"] != predicted["h3"]
    assert 0.0 < eval_variants.score({r["id"]: r["story"] for r in rows}, predicted)["bcubed_f1"] <= 1.0


def test_ledes_tell_each_story_by_its_headline_and_first_sentences():
    rows = variants.ledes([_article("flood", 0), _article("flood", 1)])
    assert sorted(r["id"] for r in rows) == ["flood-0", "flood-0-lede1", "flood-0-lede2"]
    assert all(r["text"] is None and r["published"] is None and r["story"] == "flood" for r in rows)
    assert all(len(r["title"].split()) <= 20 for r in rows)


def test_feed_headlines_take_labels_from_the_hand_made_groups(tmp_path):
    items = "".join(f"<item><title>Headline {i}</title></item>" for i in range(30))
    (tmp_path / "node-feedparser").mkdir()
    (tmp_path / "node-feedparser" / "tpm.atom").write_text(f"<rss><channel><title>T</title>{items}</channel></rss>")
    rows = {r["id"]: r["story"] for r in variants.feed_headlines(tmp_path)}
    assert len(rows) == 30
    assert rows["node-feedparser/tpm.atom#2"] == rows["node-feedparser/tpm.atom#12"]
    assert rows["node-feedparser/tpm.atom#0"] != rows["node-feedparser/tpm.atom#1"]
    assert variants.feed_headlines(tmp_path / "absent") == []


def test_renamed_figures_keep_their_zero_groups_as_another_round_figure_would():
    import random

    renamed = variants._renamed("About 38,000 people fled, 1,200 homes and 00 hours", {}, random.Random(3), {})
    numbers = renamed.replace(",", " ").split()
    assert numbers[1] != "38" and numbers[2] == "000"  # 38 became another two-digit figure, its thousands stayed
    assert numbers[5] != "1" or numbers[6] != "200"
    assert numbers[9] == "00"


def test_by_outlet_keeps_every_row_and_the_order_within_each_outlet():
    rows = [{"id": str(n), "title": f"headline {n}", "text": None, "published": None, "source": None,
             "url": None, "story": str(n % 5)} for n in range(200)]
    dumped = variants.by_outlet(rows, seed=3, outlets=4)
    assert sorted(r["id"] for r in dumped) == [r["id"] for r in sorted(rows, key=lambda r: r["id"])]
    ids = [int(r["id"]) for r in dumped]
    assert ids != sorted(ids)  # outlets one after the other: the stream order is broken...
    breaks = sum(later < earlier for earlier, later in zip(ids, ids[1:], strict=False))
    assert 1 <= breaks <= 3  # ...only where one outlet's rows end and the next one's begin
