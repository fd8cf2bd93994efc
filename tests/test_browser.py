"""The web view in a real Chromium (Playwright driving the system's /usr/bin/chromium): a reader opens the
river, follows a story, searches, and steps through the digest archive; on a phone and in dark mode too.

`make test` and `.ci/run` install Debian's chromium when it is missing; without a browser these tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import webdata  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("AGGREGATOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install the Debian packages chromium and chromium-driver "
                    "(make test does so when it can)")
    return sync_api


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    data = webdata.build(str(folder / "browser.db"))
    (folder / "feeds.yaml").write_text(webdata.FEEDS_YAML)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "aggregator", "--config", str(folder / "feeds.yaml"), "--database", data.database,
            "serve", "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=process.stdout.read, daemon=True).start()  # drain the log
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/healthz", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("aggregator serve did not start")
            time.sleep(0.2)
    yield base, data
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    sync_api = _browser_or_skip()
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as exc:  # a browser that is there but cannot start
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(java_script_enabled=False)  # every page works without JavaScript
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.problems = problems
    yield tab
    context.close()


def test_open_the_river_and_follow_a_story(server, page):
    base, data = server
    page.goto(base + "/")
    assert page.title() == "Stories · aggregator"
    headlines = page.locator("article.story h2 a")
    assert headlines.count() >= 3
    first = headlines.first
    assert "Budapest summit" in first.inner_text()
    first.click()
    page.wait_for_url(f"{base}/stories/{data.summit_story}")
    assert page.locator("h1").inner_text().startswith("Leaders agree to hold Budapest summit")
    assert page.locator("ol.timeline li").count() >= 3
    assert page.locator("ul.copies li").count() == 1  # the wire copy folded under its original
    out = page.locator("ol.articles a.title").first
    assert out.get_attribute("rel") == "noopener noreferrer nofollow"
    assert page.problems == []  # no CSP violation, no error


def test_the_since_control_and_filters_work_without_javascript(server, page):
    base, _ = server
    page.goto(base + "/")
    assert "Central bank raises rates" not in page.content()
    page.select_option("select[name=since]", "all")
    page.fill("input[name=min_sources]", "1")
    page.click("form.filters button")
    page.wait_for_url("**since=all**")
    assert "Central bank raises rates" in page.content()
    page.select_option("select[name=tag]", "local")
    page.click("form.filters button")
    page.wait_for_url("**tag=local**")
    assert "Port strike" not in page.content()


def test_search_from_the_header(server, page):
    base, data = server
    page.goto(base + "/")
    page.fill("#site-q", "danube floods")
    page.press("#site-q", "Enter")
    page.wait_for_url("**/search?q=danube+floods")
    results = page.locator("article.result")
    assert results.count() == 1
    assert page.locator("article.result mark").count() >= 2
    results.locator("h2 a").click()
    page.wait_for_url(f"{base}/stories/{data.flood_story}")
    page.goto(base + "/search?q=" + "%22" * 3)
    assert "nothing to search for" in page.locator("p.error").inner_text()


def test_step_through_the_digest_archive(server, page):
    base, _ = server
    page.goto(base + "/")
    page.click("header.site >> text=Digest")
    page.wait_for_url(base + "/digest")
    page.click("a[href='/digest/2026-11-24']")
    assert "Central bank raises rates" in page.content()
    page.click("nav.pager a[rel=next] >> nth=0")  # the next older day with articles
    page.wait_for_url(base + "/digest/2026-11-22")
    assert "Port strike" in page.content()
    page.click("nav.pager a[rel=prev] >> nth=0")
    page.wait_for_url(base + "/digest/2026-11-24")
    assert page.problems == []


def test_a_phone_in_dark_mode_reads_without_sideways_scrolling(server, browser):
    base, data = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    tab = context.new_page()
    try:
        for path in ("/", f"/stories/{data.summit_story}", "/feeds", "/digest/2026-11-24"):
            tab.goto(base + path)
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(23, 23, 26)"  # the dark palette
    finally:
        context.close()


def test_the_keyboard_reaches_the_skip_link_first(server, page):
    base, _ = server
    page.goto(base + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"
