"""Extraction in worker processes: time limit, size limits, replacement of a stuck worker, threads, clean-up.

The extractors below run inside the workers, which import this module by name (the workers get the
parent's sys.path), so they must stay module-level functions.
"""

import logging
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from aggregator import extract
from aggregator.extract import MAX_PAGE_CHARS, ExtractorPool, extract_from_html

PAGE = "<html><body><article>" + "<p>The harbour reopened on Tuesday after repairs to the sea wall.</p>" * 20 + (
    "</article></body></html>")


def echo(html, url, max_elements):
    """Stands in for trafilatura: stalls on SLOW, dies on CRASH, hogs memory on HOG, else echoes."""
    if "SLOW" in html:
        time.sleep(60)
    if "CRASH" in html:
        os._exit(3)
    if "HOG" in html:
        hog = [0] * (300 * 1024 * 1024)  # 2.4 GB at once, past the worker's address space limit
        return str(len(hog))
    if "BROKEN" in html:
        raise ValueError("broken markup")
    return f"{url}|{len(html)}|{html[:12]}"


def _gone(pid: int, wait: float = 5.0) -> bool:
    """The process has ended (a zombie not yet reaped by its new parent counts as ended)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        except OSError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def pool():
    made = ExtractorPool(workers=1, timeout=1.0, extract=f"{__name__}:echo", memory_mb=1024)
    yield made
    pids = made.pids()
    made.close()
    assert all(_gone(pid) for pid in pids), "a worker outlived its pool"


def test_stuck_page_times_out_and_the_worker_is_replaced(pool, caplog):
    assert pool.run("<p>first</p>", "https://a.example/") == "https://a.example/|12|<p>first</p>"
    (first_pid,) = pool.pids()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
        assert pool.run("<p>SLOW</p>", "https://a.example/slow") == ""
    assert time.monotonic() - started < pool.timeout + 1
    assert "no answer within 1 s" in caplog.text and "https://a.example/slow" in caplog.text
    assert pool.restarts == 1 and _gone(first_pid)
    assert pool.run("<p>again</p>") == "None|12|<p>again</p>"
    assert pool.pids() and pool.pids() != [first_pid]


def test_crash_error_and_memory_hog_each_give_empty_text(pool, caplog):
    with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
        assert pool.run("CRASH") == ""
        assert pool.run("BROKEN") == ""  # an ordinary exception: the worker keeps serving
        pid = pool.pids()[0]
        assert pool.run("HOG") == ""
    assert "exit status 3" in caplog.text and "ValueError: broken markup" in caplog.text
    assert "ran out of memory" in caplog.text
    assert _gone(pid)
    assert pool.run("fine") == "None|4|fine"
    assert pool.restarts == 2


def test_oversized_page_refused_without_a_worker(caplog):
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
        assert extract_from_html("x" * (MAX_PAGE_CHARS + 1), "https://big.example/") == ""
    assert time.perf_counter() - started < 0.1
    assert "not read" in caplog.text


def test_tree_too_large_refused():
    pool = ExtractorPool(workers=1, max_elements=1_000)
    try:
        assert pool.run("<html><body>" + "<p>word word word word</p>" * 2_000 + "</body></html>") == ""
        assert "harbour reopened" in pool.run(PAGE)  # a page under the limit is read
    finally:
        pool.close()


def test_tree_counted_only_when_its_tags_could_pass_the_limit():
    """A page with few tags goes to trafilatura as it is; one with more than half the limit's worth of tags is
    parsed and counted first, read when under the limit, refused over it, and both ways give the same text."""
    page = "<html><body>" + "<p>The harbour reopened on Tuesday after repairs to the sea wall.</p>" * 300 + (
        "</body></html>")  # 604 "<", about 303 elements
    assert extract._bounded_document(page, 10_000) is page
    read_as_is = extract.article_text(page, max_elements=10_000)
    assert "harbour reopened" in read_as_is
    assert not isinstance(extract._bounded_document(page, 1_000), str)  # 604 > 500: counted
    assert extract.article_text(page, max_elements=1_000) == read_as_is
    with pytest.raises(extract.PageTooLarge):
        extract.article_text(page, max_elements=200)


def test_genuinely_slow_page_times_out_with_real_trafilatura(caplog):
    """150,000 links (4 MB, under both size limits) keep trafilatura busy for seconds: cut at 1 s."""
    page = "<html><body><div>" + '<a href="/x">link text</a> ' * 150_000 + "</div></body></html>"
    pool = ExtractorPool(workers=1, timeout=1.0)
    try:
        pool.run("<html><body><p>warm up</p></body></html>")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
            assert pool.run(page, "https://slow.example/") == ""
        assert time.monotonic() - started < 1.0 + 1
        assert "no answer within 1 s" in caplog.text
        assert "harbour reopened" in pool.run(PAGE)
    finally:
        pool.close()


def test_shared_pool_time_limit_via_extract_from_html(caplog):
    """extract_from_html (the pipeline's entry point) gives up at the shared pool's limit."""
    extract.configure_extraction(workers=1, timeout=1.0, extract=f"{__name__}:echo")
    try:
        with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
            for timeout in (None, 0.3):
                assert extract_from_html("<p>ready</p>")  # (re)starts the worker: not part of the limit
                started = time.monotonic()
                assert extract_from_html("<p>SLOW</p>", "https://s.example/", timeout=timeout) == ""
                assert time.monotonic() - started < (timeout or 1.0) + 1
        assert caplog.text.count("https://s.example/") == 2
        assert extract_from_html("<p>\x00ok\r\n</p>") == "None|12|<p>ok\n</p>"  # control characters dropped
    finally:
        extract.shutdown_extraction()


def test_many_threads_share_the_workers():
    pool = ExtractorPool(workers=2, timeout=5.0, extract=f"{__name__}:echo")
    results: dict[int, str] = {}

    def call(n: int) -> None:
        results[n] = pool.run(f"page {n:03d} " + "x" * (n * 1000), f"https://t.example/{n}")

    try:
        threads = [threading.Thread(target=call, args=(n,)) for n in range(48)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(pool.pids()) <= 2
        assert results == {n: f"https://t.example/{n}|{9 + n * 1000}|" + f"page {n:03d} xxx"[: 9 + min(3, n * 1000)]
                           for n in range(48)}
    finally:
        pool.close()


def test_real_extraction_from_threads_matches_serial():
    pages = [PAGE.replace("Tuesday", day) for day in ("Monday", "Tuesday", "Friday", "Sunday")]
    serial = [extract.article_text(page) for page in pages]
    out: list[str | None] = [None] * len(pages)

    def call(i: int) -> None:
        out[i] = extract_from_html(pages[i], f"https://r.example/{i}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(pages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert out == serial and all("reopened on" in text for text in out)


def test_per_page_overhead_is_small():
    """The round trip to a worker (pipe, encoding, wake-ups) costs well under 20 ms for a 200 kB page."""
    pool = ExtractorPool(workers=1, extract=f"{__name__}:echo")
    html = "<p>" + "x" * 200_000 + "</p>"
    try:
        pool.run(html)  # starts the worker
        times = []
        for _ in range(20):
            started = time.perf_counter()
            pool.run(html)
            times.append(time.perf_counter() - started)
    finally:
        pool.close()
    assert statistics.median(times) < 0.020, times


def test_pages_still_read_in_process_when_no_worker_can_start(monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    pool = ExtractorPool(workers=1)
    try:
        with caplog.at_level(logging.WARNING, logger="aggregator.extract"):
            assert "harbour reopened" in pool.run(PAGE)
        assert "in-process" in caplog.text and not pool.pids()
    finally:
        pool.close()


def test_extractor_must_be_importable():
    with pytest.raises(ValueError, match="module-level"):
        ExtractorPool(extract=lambda html, url, n: "")


def test_workers_stop_when_the_interpreter_exits_or_dies(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys, threading, time
        sys.path[:0] = {sys.path!r}
        from aggregator.extract import ExtractorPool, extraction_pool
        if sys.argv[1] == "busy":  # killed while its worker is stuck on a page
            pool = ExtractorPool(workers=1, timeout=1.0, extract="{__name__}:echo")
            pool.run("<p>x</p>")
            print(*pool.pids(), flush=True)
            threading.Thread(target=pool.run, args=("SLOW",), daemon=True).start()
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGKILL)
        pool = ExtractorPool(workers=1)  # a pool of its own, besides the shared one
        pool.run("<p>x</p>")
        extraction_pool().run("<html><body><p>x</p></body></html>")
        print(*pool.pids(), *extraction_pool().pids(), flush=True)
        if sys.argv[1] == "hang":
            time.sleep(60)
    """)
    for mode in ("exit", "hang", "busy"):
        child = subprocess.Popen([sys.executable, "-c", script, mode], stdout=subprocess.PIPE, text=True)
        pids = [int(pid) for pid in child.stdout.readline().split()]
        assert len(pids) == (1 if mode == "busy" else 2)
        if mode == "hang":
            os.kill(child.pid, signal.SIGKILL)  # no atexit: the workers see their pipe close and end
        child.wait(30)
        child.stdout.close()
        # "busy": the worker's own alarm ends it, 5 s past the page's time limit
        assert all(_gone(pid, wait=10) for pid in pids), mode


def test_extraction_times_and_timeouts_are_measured():
    """/metrics counts an overrunning page as an extraction timeout and observes every page's time."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from aggregator import stats

    def value(name: str) -> float:
        text = generate_latest(stats.registry()).decode()
        return next((s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name), 0)

    timeouts = value("aggregator_extraction_timeouts_total")
    pages = value("aggregator_extraction_duration_seconds_count")
    extract.configure_extraction(workers=1, timeout=1.0, extract=f"{__name__}:echo")
    try:
        assert extract_from_html("<p>ready</p>")
        assert extract_from_html("<p>SLOW</p>", "https://s.example/", timeout=0.3) == ""
    finally:
        extract.shutdown_extraction()
    assert value("aggregator_extraction_timeouts_total") == timeouts + 1
    assert value("aggregator_extraction_duration_seconds_count") == pages + 2
