"""``aggregator serve`` and the daemon's web view as a user runs them: start, answer, SIGTERM, port in use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).parent))
import webdata  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(*argv: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "aggregator", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def _get(url: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _stop(process: subprocess.Popen) -> tuple[int, float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    return process.returncode, time.monotonic() - started, output


def test_serve_answers_and_stops_on_sigterm(tmp_path):
    data = webdata.build(str(tmp_path / "serve.db"))
    port = _free_port()
    process = _start("--database", data.database, "serve", "--port", str(port))
    try:
        response = _get(f"http://127.0.0.1:{port}/?since=all")
        assert response.status_code == 200 and "Budapest summit" in response.text
    finally:
        code, seconds, output = _stop(process)
    assert code == 0, output
    assert seconds < 10
    assert f"web view at http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output


def test_a_port_in_use_is_one_clear_line(tmp_path):
    data = webdata.build(str(tmp_path / "busy.db"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "aggregator", "--database", data.database, "serve", "--port",
                                 str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"aggregator: cannot listen on 127.0.0.1:{port}: the port is in use"
    assert "Traceback" not in result.stderr


def test_serving_beyond_loopback_says_there_is_no_authentication(tmp_path):
    data = webdata.build(str(tmp_path / "open.db"))
    port = _free_port()
    process = _start("--database", data.database, "serve", "--host", "0.0.0.0", "--port", str(port))
    try:
        assert _get(f"http://127.0.0.1:{port}/healthz").status_code in (200, 404)
    finally:
        _, _, output = _stop(process)
    assert "no authentication" in output


def _daemon_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"settings:\n  web: {{port: {port}}}\n  allow_private_networks: true\nfeeds: []\n")
    return path


def test_the_daemon_serves_the_web_view_and_stops_it_on_sigterm(tmp_path):
    data = webdata.build(str(tmp_path / "daemon.db"))
    port = _free_port()
    process = _start("--config", str(_daemon_config(tmp_path, port)), "--database", data.database, "run")
    try:
        response = _get(f"http://127.0.0.1:{port}/stories/{data.summit_story}")
        assert response.status_code == 200 and "Timeline" in response.text
    finally:
        code, seconds, output = _stop(process)
    assert code == 0, output
    assert seconds < 10
    assert "stopped" in output and "Traceback" not in output
    with socket.socket() as again:  # the port is released
        again.bind(("127.0.0.1", port))


def test_the_daemon_runs_on_when_its_web_port_is_taken(tmp_path):
    data = webdata.build(str(tmp_path / "taken.db"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        process = _start("--config", str(_daemon_config(tmp_path, port)), "--database", data.database, "run")
        seen = []
        try:
            for line in process.stdout:  # the daemon says so once it is running
                seen.append(line)
                if "web view not started" in line:
                    break
            assert process.poll() is None, "the daemon stopped"
        finally:
            code, _, rest = _stop(process)
    output = "".join(seen) + rest
    assert code == 0, output
    lines = [line for line in output.splitlines() if "web view not started" in line]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}: the port is in use" in lines[0]
    assert "Traceback" not in output
