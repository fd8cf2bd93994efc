"""The clustering benchmark runs end to end (tiny sizes; its figures are measured by hand, not by tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_cluster.py"


def test_benchmark_reports_speed_memory_and_restart(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--skip-quality", "--synthetic", "--sizes", "300", "--windows", "2"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    speed, restart = (json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("=="))
    assert speed["indexed"] == 300 and speed["headline_per_s"] > 0 and speed["fulltext_per_s"] > 0
    assert speed["windows"] == 2 and speed["headline_per_cpu_s"] > 0 and speed["fulltext_per_cpu_s"] > 0
    assert speed["rss_mib"] > 0
    assert restart["stored"] == restart["reloaded"] == 300
    assert 0 < restart["restart_seconds"] < 60


def test_the_304_benchmark_compares_a_poll_with_a_bare_loop():
    script = SCRIPT.parent / "bench_304.py"
    out = subprocess.run([sys.executable, str(script), "--feeds", "15", "--rounds", "1"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    (figures,) = (json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("== 304"))
    assert figures["feeds"] == 15 and figures["aggregator_wall"] > 0 and figures["bare_cpu"] > 0
    assert figures["wall_ratio"] > 0


def test_the_ingest_benchmark_compares_a_poll_with_trafilatura_alone():
    script = SCRIPT.parent / "bench_ingest.py"
    command = [sys.executable, str(script), "--pages", "24", "--feeds", "3", "--synthetic", "--workers", "1"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout
    (figures,) = (json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("== ingest"))
    assert figures["pages"] == 24 and figures["articles"] == 24 and figures["copies"] > 0
    assert figures["aggregator_cpu"] > 0 and figures["floor_cpu"] > 0 and figures["main_rss_mib"] > 0
    assert 0 < figures["statements_per_article"] < 10
    bare = figures["bare_cpu"]
    assert all(bare[stage] >= 0 for stage in ("fetch", "parse", "store")) and bare["imports"] > 0
    assert bare["total"] > 0 and figures["main_to_bare_ratio"] > 0


BENCH_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench"


@pytest.mark.skipif(not (BENCH_DIR / "googlenews-t.jsonl").exists(), reason="../shared/bench not present")
def test_the_replay_benchmark_reports_the_write_path_and_boilerplate():
    script = SCRIPT.parent / "bench_replay.py"
    out = subprocess.run([sys.executable, str(script), "--limit", "150"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    (figures,) = (json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("== replay"))
    assert figures["articles"] == 150 and 0 < figures["statements_per_article"] <= 2
    assert figures["boilerplate_ratio"] > 0 and figures["syndication_bcubed_f1"] > 0.9


def test_the_idle_poll_benchmark_times_a_poll_that_finds_nothing_new():
    script = SCRIPT.parent / "bench_idle_poll.py"
    out = subprocess.run([sys.executable, str(script), "--feeds", "2", "--entries", "3", "--rounds", "1"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    (figures,) = (json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("== idle poll"))
    assert figures["feeds"] == 2
    assert all(figures[name]["cpu"] > 0 for name in ("python -c pass", "poll, all 304", "poll, bodies unchanged"))
