"""The scaling benchmark runs end to end on PostgreSQL (tiny sizes; its figures are measured by hand)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"
ADMIN_URL = os.environ.get("AGGREGATOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.mark.slow
def test_the_scaling_benchmark_reports_workers_sequencer_and_queue(tmp_path):
    pytest.importorskip("procrastinate")
    try:
        create_engine(ADMIN_URL).connect().close()
    except Exception as exc:  # no server: nothing to measure
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    command = [sys.executable, str(SCRIPT), "--admin-url", ADMIN_URL.replace("+psycopg", ""), "--pages", "16",
               "--feeds", "2", "--synthetic", "--sequencer-articles", "40", "--bench-dir", str(tmp_path),
               "--jobs", "20"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    lines = done.stdout.splitlines()
    (figures,) = (json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("== scale"))
    runs = figures["scaling"]["runs"]
    assert [run["workers"] for run in runs] == [1, 2]
    assert all(run["articles"] == 16 and run["articles_per_s"] > 0 for run in runs)
    assert runs[1]["processes"] == 2 and runs[0]["sequencer"]
    assert figures["sequencer"]["stored"] == 40 and figures["sequencer"]["articles_per_s"] > 0
    assert figures["queue"]["jobs"] == 20 and figures["queue"]["run_cpu_ms"] > 0
