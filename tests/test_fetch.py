"""The fetcher against a LocalSite on 127.0.0.1: no test reaches the internet."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from aggregator.config import Settings
from aggregator.fetch import Fetcher, FetchError, FetchResult, decode_html
from aggregator.localsite import LocalSite, respond

SETTINGS = Settings(timeout=2, allowed_networks=["127.0.0.1/32"])


def fetch(url: str, settings: Settings = SETTINGS, **kwargs: object) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


def fetch_error(url: str, settings: Settings = SETTINGS, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, settings, **kwargs)
    assert str(caught.value).startswith("fetch: ")
    return caught.value


def redirect(site: LocalSite, path: str, to: str, status: int) -> None:
    site.route(path, respond(status, {"Location": to}))


def test_200_with_body_and_headers(site: LocalSite) -> None:
    site.put("/page", "<p>héllo</p>", headers={"X-Extra": "yes"})
    result = fetch(site.url("/page"))
    assert result.status == 200
    assert result.content == "<p>héllo</p>".encode()
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    assert result.headers["x-extra"] == "yes"
    assert result.url == site.url("/page")
    assert result.not_modified is False and result.permanent_redirect is None
    assert result.etag and result.last_modified
    assert result.elapsed >= 0


def test_etag_round_trip_gives_304(site: LocalSite) -> None:
    site.put("/feed.xml", "<rss/>", content_type="application/rss+xml")
    first = fetch(site.url("/feed.xml"))
    second = fetch(site.url("/feed.xml"), etag=first.etag)
    assert second.status == 304 and second.not_modified
    assert second.content == b""
    assert second.etag == first.etag
    assert site.requests[-1][1]["If-None-Match"] == first.etag
    assert "If-None-Match" not in site.requests[0][1]


def test_last_modified_round_trip_gives_304(site: LocalSite) -> None:
    site.put("/feed.xml", "<rss/>", headers={"ETag": None})
    first = fetch(site.url("/feed.xml"))
    assert first.etag is None and first.last_modified
    second = fetch(site.url("/feed.xml"), last_modified=first.last_modified)
    assert second.not_modified and second.content == b""
    assert second.last_modified == first.last_modified
    assert site.requests[-1][1]["If-Modified-Since"] == first.last_modified


def test_changed_resource_is_fetched_again(site: LocalSite) -> None:
    site.put("/feed.xml", "<rss>one</rss>")
    first = fetch(site.url("/feed.xml"))
    site.put("/feed.xml", "<rss>two</rss>", headers={"Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"})
    second = fetch(site.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert second.status == 200 and second.content == b"<rss>two</rss>"
    assert second.etag != first.etag


def test_permanent_redirect_chain(site: LocalSite) -> None:
    redirect(site, "/a", "/b", 301)
    redirect(site, "/b", site.url("/final"), 308)
    site.put("/final", "done")
    result = fetch(site.url("/a"))
    assert result.content == b"done"
    assert result.url == site.url("/final")
    assert result.permanent_redirect == site.url("/final")
    assert site.hits == {"/a": 1, "/b": 1, "/final": 1}


def test_temporary_hop_means_no_permanent_redirect(site: LocalSite) -> None:
    redirect(site, "/a", "/b", 301)
    redirect(site, "/b", "/final", 302)
    site.put("/final", "done")
    result = fetch(site.url("/a"))
    assert result.url == site.url("/final") and result.content == b"done"
    assert result.permanent_redirect is None


def test_more_than_five_redirects_fail(site: LocalSite) -> None:
    redirect(site, "/loop", "/loop?again", 302)
    error = fetch_error(site.url("/loop"))
    assert "too many redirects" in str(error)
    assert site.hits["/loop"] == 6  # the first request and five followed hops


def test_five_redirects_are_followed(site: LocalSite) -> None:
    for hop in range(5):
        redirect(site, f"/r{hop}", f"/r{hop + 1}", 301)
    site.put("/r5", "end")
    assert fetch(site.url("/r0")).content == b"end"


def test_404_is_permanent(site: LocalSite) -> None:
    error = fetch_error(site.url("/missing"))
    assert error.status == 404 and error.permanent
    assert error.url == site.url("/missing")
    assert "404" in str(error)


def test_503_retry_after_seconds(site: LocalSite) -> None:
    site.route("/busy", respond(503, {"Retry-After": "120"}))
    error = fetch_error(site.url("/busy"))
    assert error.status == 503 and error.retry_after == 120
    assert not error.permanent


def test_429_retry_after_http_date(site: LocalSite) -> None:
    site.route("/slowdown", respond(429, {"Retry-After": formatdate(time.time() + 300, usegmt=True)}))
    error = fetch_error(site.url("/slowdown"))
    assert error.status == 429
    assert error.retry_after is not None and 290 <= error.retry_after <= 300


def test_body_over_max_bytes_fails(site: LocalSite) -> None:
    site.put("/big", b"x" * 10_000)
    assert len(fetch(site.url("/big"), max_bytes=10_000).content) == 10_000
    error = fetch_error(site.url("/big"), max_bytes=9_999)
    assert "larger than 9999 bytes" in str(error)
    settings = Settings(timeout=2, max_response_bytes=5_000, allowed_networks=["127.0.0.1/32"])
    fetch_error(site.url("/big"), settings)


def test_gzip_over_cap_once_decompressed_fails(site: LocalSite) -> None:
    plain = b"a" * 200_000
    compressed = gzip.compress(plain)
    assert len(compressed) < 10_000  # small on the wire, large once decompressed
    site.put("/bomb", compressed, content_type="text/html", headers={"Content-Encoding": "gzip"})
    assert fetch(site.url("/bomb"), max_bytes=200_000).content == plain
    error = fetch_error(site.url("/bomb"), max_bytes=100_000)
    assert "larger than" in str(error)


def test_trickling_server_is_cut_off_by_total_deadline(site: LocalSite) -> None:
    def trickle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.end_headers()
        try:
            for _ in range(20):  # one byte every 0.5 s for 10 s: each read is well inside the timeout
                request.wfile.write(b"x")
                request.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass  # the fetcher hung up, as it should

    site.route("/slow", trickle)
    started = time.monotonic()
    error = fetch_error(site.url("/slow"))
    assert time.monotonic() - started < 4
    assert "timed out after 2s" in str(error)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/file", "javascript:alert(1)", "/x"])
def test_non_http_urls_refused_without_a_request(url: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"should not happen")

    async def run() -> None:
        async with Fetcher(SETTINGS, transport=httpx.MockTransport(handler)) as fetcher:
            await fetcher.fetch(url)

    with pytest.raises(FetchError) as caught:
        asyncio.run(run())
    assert str(caught.value).startswith("fetch: ")
    assert sent == []


def test_redirect_to_non_http_url_refused(site: LocalSite) -> None:
    redirect(site, "/sneaky", "file:///etc/passwd", 302)
    error = fetch_error(site.url("/sneaky"))
    assert "scheme" in str(error)


def test_user_agent_sent(site: LocalSite) -> None:
    site.put("/ua", "ok")
    fetch(site.url("/ua"), Settings(timeout=2, user_agent="test-agent/1.0", allowed_networks=["127.0.0.1/32"]))
    assert site.requests[-1][1]["User-Agent"] == "test-agent/1.0"


def test_connection_refused_is_a_fetch_error() -> None:
    with LocalSite() as gone:
        url = gone.url("/nothing")
    error = fetch_error(url)
    assert "cannot connect" in str(error)
    assert error.status is None


def test_per_host_limit_respected(site: LocalSite) -> None:
    lock = threading.Lock()
    in_flight = 0
    max_seen = 0

    def counted(request: BaseHTTPRequestHandler) -> None:
        nonlocal in_flight, max_seen
        with lock:
            in_flight += 1
            max_seen = max(max_seen, in_flight)
        time.sleep(0.2)
        with lock:
            in_flight -= 1
        respond(200, body=b"ok")(request)

    site.route("/counted", counted)
    settings = Settings(timeout=2, per_host_limit=2, max_concurrency=8, allowed_networks=["127.0.0.1/32"])

    async def run() -> tuple[list[FetchResult], int]:
        async with Fetcher(settings) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(site.url(f"/counted?n={i}")) for i in range(6)))
            return results, len(fetcher._per_host)

    results, hosts_kept = asyncio.run(run())
    assert [r.content for r in results] == [b"ok"] * 6
    assert max_seen == 2  # parallel, but never more than the limit
    assert hosts_kept == 0  # a host nobody is fetching from keeps no entry


def test_fetch_page_refuses_non_html(site: LocalSite) -> None:
    site.put("/doc.pdf", b"%PDF-1.7", content_type="application/pdf")
    site.put("/article", "<html></html>")

    async def run(path: str) -> FetchResult:
        async with Fetcher(SETTINGS) as fetcher:
            return await fetcher.fetch_page(site.url(path))

    assert asyncio.run(run("/article")).content == b"<html></html>"
    with pytest.raises(FetchError, match="not an HTML page"):
        asyncio.run(run("/doc.pdf"))


def test_fetch_feed_sends_feed_accept(site: LocalSite) -> None:
    site.put("/feed.xml", "<rss/>", content_type="application/rss+xml")

    async def run() -> FetchResult:
        async with Fetcher(SETTINGS) as fetcher:
            return await fetcher.fetch_feed(site.url("/feed.xml"))

    assert asyncio.run(run()).content == b"<rss/>"
    assert "application/rss+xml" in site.requests[-1][1]["Accept"]


def page(content: bytes, content_type: str | None = None) -> FetchResult:
    headers = {"content-type": content_type} if content_type else {}
    return FetchResult("http://example.test/", 200, content, headers, None, None, False, None, 0.0)


def test_decode_html_charset_from_header() -> None:
    body = "<p>café</p>".encode("iso-8859-1")
    assert decode_html(page(body, "text/html; charset=ISO-8859-1")) == "<p>café</p>"
    assert decode_html(page("<p>κόσμε</p>".encode("iso-8859-7"), 'text/html; charset="iso-8859-7"')) == ("<p>κόσμε</p>")


def test_decode_html_charset_from_meta() -> None:
    body = b'<html><head><meta charset="windows-1252"></head><body>\x93caf\xe9\x94</body></html>'
    assert "\u201ccafé\u201d" in decode_html(page(body, "text/html"))
    http_equiv = b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>\x96</p>'
    assert "<p>\u2013</p>" in decode_html(page(http_equiv))


def test_decode_html_strips_bom() -> None:
    assert decode_html(page(b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", "text/html")) == "<p>café</p>"
    assert decode_html(page("\ufeff<p>é</p>".encode("utf-16-le"))) == "<p>é</p>"


def test_decode_html_falls_back_to_utf8_with_replacement() -> None:
    assert decode_html(page("<p>café</p>".encode())) == "<p>café</p>"
    assert decode_html(page(b"<p>caf\xe9</p>", "text/html; charset=no-such-charset")) == "<p>caf\ufffd</p>"
