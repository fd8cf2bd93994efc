"""Fuzzing the parse and extract stages with Hypothesis.

parse_feed either returns a ParsedFeed whose strings are all clean text, or raises ParseError: never any
other exception, and never slowly. Feeds are built from strategies (RSS, Atom, JSON Feed) in random
encodings, then mutated at the byte level; random bytes, token soup and random HTML pages are thrown in too.
Derandomized, so CI runs the same examples every time.
"""

import gzip
import html
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.extract import extract_from_html
from aggregator.parse import ParsedFeed, ParseError, html_to_text, parse_feed
from aggregator.xmlguard import decode_document

PARSE_SECONDS = 2.0  # wall time allowed per parse (measured worst is far below)

FUZZ = settings(
    max_examples=150,
    deadline=None,  # time is asserted per call below; a deadline would also count Hypothesis's own work
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

NASTY_CHARS = ["\x00", "\x01", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\r", "\ud800", "\udfff", "\ufeff",
               "\ufffe", "\uffff", "\u200b", "\u2028", "😀", "中", "é", "&", "<", ">", '"', "'", "]]>", "\t", "\n"]
text = st.lists(st.one_of(st.characters(), st.sampled_from(NASTY_CHARS)), max_size=30).map("".join)
urls = st.one_of(
    st.sampled_from(["https://ex.example/a?utm_source=x&id=1#frag", "/relative/path", "javascript:alert(1)",
                     "HTTP://Ex.Example/../a/./b", "http://[::1]:80/x", "http://exa mple.com/", "mailto:a@b",
                     "https://xn--n3h.example/", "https://ex.example/" + "a" * 3000, "//host.example/x", ""]),
    text,
)
dates = st.one_of(
    st.sampled_from(["Tue, 24 Nov 2026 09:30:00 +0100", "2026-11-24T10:00:00Z", "2026-13-45T99:99:99",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "Mon, 31 Feb 1900 25:61:00 XYZ",
                     "1" * 200, "yesterday", ""]),
    text,
)

TOKENS = [b"<", b">", b"&", b"&amp;", b"&nbsp;", b"&#xD800;", b"&#0;", b"&#1114112;", b"&bogus;", b"<!DOCTYPE x [",
          b"<!ENTITY a \"aaaa\">", b"&a;", b"%a;", b"]>", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?xml", b"?>",
          b"<?xml version='1.0' encoding='utf-16'?>", b"<item>", b"</item>", b"<entry>", b"</entry>", b"<title>",
          b"</title>", b"<rss version=\"2.0\">", b"<channel>", b"<feed xmlns=\"http://www.w3.org/2005/Atom\">",
          b"\x00", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\x1f\x8b", b"\xc3", b"\xed\xa0\x80", b"\x80",
          b"\"", b"'", b"=", b" ", b"\n", b"<a href=\"", b"<script>", b"</script>", b"<link>", b"</link>"]

CODECS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "shift_jis",
          "gb18030", "koi8-r", "iso-2022-jp"]
DECLARED = [None, "utf-8", "UTF-16", "iso-8859-1", "windows-1251", "shift_jis", "bogus", "punycode", "utf-7",
            "idna", "cp037", "utf-32"]
CONTENT_TYPES = [None, "application/rss+xml", "application/atom+xml; charset=utf-8", "text/xml",
                 "text/xml; charset=iso-8859-1", "text/html; charset=utf-16", "application/json",
                 "application/feed+json", "application/xml; charset=bogus", "application/xml; charset=\"utf-7\""]


def assert_clean(feed: ParsedFeed) -> None:
    assert isinstance(feed, ParsedFeed)
    values = [feed.title, feed.site_url, feed.format, feed.warning]
    for entry in feed.entries:
        values += [entry.external_id, entry.title, entry.url, entry.canonical_url, entry.summary, entry.content,
                   entry.author]
        assert entry.external_id
    for value in values:
        if value is None:
            continue
        assert isinstance(value, str)
        value.encode("utf-8")
        assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in value), repr(value)


def check(data: bytes, content_type: str | None = None) -> ParsedFeed | None:
    headers = {"Content-Type": content_type} if content_type else {}
    started = time.perf_counter()
    try:
        feed = parse_feed(data, headers, "https://fuzz.example/feed")
    except ParseError:
        feed = None
    elapsed = time.perf_counter() - started
    assert elapsed < PARSE_SECONDS, f"{elapsed:.2f} s for {data[:100]!r}"
    if feed is not None:
        assert_clean(feed)
    return feed


def escaped(value: str, style: str) -> str:
    if style == "escape":
        return html.escape(value)
    if style == "cdata":
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    if style == "html":
        return html.escape(f"<p>{value}</p><script>x</script><b>{value}</b>")
    return value  # raw: may well break the XML


@st.composite
def rss_feeds(draw) -> str:
    style = st.sampled_from(["escape", "escape", "cdata", "html", "raw"])
    items = []
    for _ in range(draw(st.integers(0, 4))):
        fields = []
        for tag in draw(st.lists(st.sampled_from(
                ["title", "link", "guid", "description", "pubDate", "author", "content:encoded", "dc:creator",
                 "dc:date", "category", "enclosure"]), max_size=7)):
            value = draw(urls) if tag in ("link", "guid") else draw(dates) if "date" in tag.lower() else draw(text)
            fields.append(f"<{tag}>{escaped(value, draw(style))}</{tag}>")
        items.append("<item>" + "".join(fields) + "</item>")
    version = draw(st.sampled_from(["2.0", "0.91", "0.92", "", "9"]))
    return (f'<rss version="{version}" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{escaped(draw(text), draw(style))}</title>'
            f"<link>{escaped(draw(urls), 'escape')}</link>{''.join(items)}</channel></rss>")


@st.composite
def atom_feeds(draw) -> str:
    style = st.sampled_from(["escape", "cdata", "html", "raw"])
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        parts = [f"<id>{escaped(draw(urls), draw(style))}</id>",
                 f'<link rel="alternate" href="{html.escape(draw(urls))}"/>',
                 f"<updated>{escaped(draw(dates), 'escape')}</updated>"]
        kind = draw(st.sampled_from(["text", "html", "xhtml"]))
        body = escaped(draw(text), draw(style))
        if kind == "xhtml":
            body = f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'
        parts.append(f'<title type="{kind}">{body}</title><content type="{kind}">{body}</content>')
        parts.append(f"<author><name>{escaped(draw(text), 'escape')}</name></author>")
        entries.append("<entry>" + "".join(draw(st.permutations(parts))) + "</entry>")
    return (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{escaped(draw(text), "escape")}</title>'
            f"{''.join(entries)}</feed>")


@st.composite
def encoded(draw, documents) -> tuple[bytes, str | None]:
    document = draw(documents)
    codec = draw(st.sampled_from(CODECS))
    declared = draw(st.sampled_from(DECLARED + [codec]))
    prolog = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
    errors = draw(st.sampled_from(["replace", "ignore", "xmlcharrefreplace"]))
    data = (prolog + document).encode(codec, errors)
    if draw(st.integers(0, 9)) == 0:
        data = gzip.compress(data)
    return data, draw(st.sampled_from(CONTENT_TYPES))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text, urls, dates),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)),
    max_leaves=8,
)
ITEM_KEYS = ["id", "url", "external_url", "title", "content_html", "content_text", "summary", "date_published",
             "date_modified", "author", "authors", "tags", "image"]


@st.composite
def json_feeds(draw) -> bytes:
    items = draw(st.lists(st.one_of(
        st.dictionaries(st.sampled_from(ITEM_KEYS), json_values, max_size=8), json_values), max_size=5))
    doc = {"version": draw(st.sampled_from(["https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1",
                                            "https://jsonfeed.org/version/" + draw(text)])),
           "title": draw(json_values), "home_page_url": draw(json_values), "items": items}
    for key in draw(st.lists(st.sampled_from(list(doc)), max_size=2)):
        doc.pop(key, None)
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw, documents) -> bytes:
    """Byte-level damage: truncation, inserted tokens or garbage, flipped bytes, cut or repeated ranges."""
    data = bytearray(draw(documents))
    for _ in range(draw(st.integers(1, 6))):
        size = len(data)
        at = draw(st.integers(0, size))
        op = draw(st.sampled_from(["truncate", "insert", "garbage", "flip", "delete", "repeat"]))
        if op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "garbage":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "flip" and at < size:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 40))] * draw(st.integers(1, 50))
    return bytes(data)


plain_rss = rss_feeds().map(lambda doc: ('<?xml version="1.0" encoding="utf-8"?>' + doc).encode("utf-8", "replace"))
plain_atom = atom_feeds().map(lambda doc: doc.encode("utf-8", "surrogatepass"))


@FUZZ
@given(encoded(rss_feeds()))
def test_generated_rss_in_any_encoding(sample):
    check(*sample)


@FUZZ
@given(encoded(atom_feeds()))
def test_generated_atom_in_any_encoding(sample):
    check(*sample)


@FUZZ
@given(json_feeds(), st.sampled_from(CONTENT_TYPES))
def test_generated_json_feeds(data, content_type):
    check(data, content_type)


@settings(FUZZ, max_examples=300)
@given(mutated(st.one_of(plain_rss, plain_atom, json_feeds())), st.sampled_from(CONTENT_TYPES))
def test_mutated_feeds(data, content_type):
    check(data, content_type)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=60).map(b"".join),
       st.sampled_from(CONTENT_TYPES))
def test_token_soup(data, content_type):
    check(data, content_type)


@FUZZ
@given(st.binary(max_size=3000), st.sampled_from(CONTENT_TYPES))
def test_random_bytes(data, content_type):
    check(data, content_type)
    decoded = decode_document(data, content_type or "")
    assert isinstance(decoded, str)


@FUZZ
@given(st.lists(st.one_of(text, st.sampled_from(["<", "<p", "<script", "</script>", "<style>", "<br/>", "&amp;",
                                                  "&#0;", "<div class='x'>", "</div>", "<!--", "-->"])), max_size=40))
def test_html_to_text(parts):
    started = time.perf_counter()
    out = html_to_text("".join(parts) * 50)
    assert time.perf_counter() - started < 0.5
    out.encode("utf-8")
    assert not any((ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) <= 0x9F for c in out)


HTML_TAGS = ["html", "head", "body", "article", "main", "div", "p", "span", "a", "h1", "h2", "ul", "li", "table",
             "tr", "td", "script", "style", "nav", "footer", "aside", "section", "blockquote", "pre", "iframe", "svg"]


@st.composite
def html_pages(draw) -> str:
    pieces = []
    for _ in range(draw(st.integers(0, 60))):
        choice = draw(st.integers(0, 4))
        tag = draw(st.sampled_from(HTML_TAGS))
        if choice == 0:
            pieces.append(f"<{tag} class=\"{html.escape(draw(text))}\">")
        elif choice == 1:
            pieces.append(f"</{tag}>")
        elif choice == 2:
            pieces.append(draw(st.sampled_from(TOKENS)).decode("latin-1"))
        else:
            pieces.append(html.escape(draw(text)) + " The council voted on the harbour plan after a long debate. ")
    return draw(st.sampled_from(["", "<!doctype html>", "<?xml version='1.0'?>"])) + "".join(pieces)


@settings(FUZZ, max_examples=60)
@given(html_pages())
def test_random_html_extraction(page):
    started = time.perf_counter()
    out = extract_from_html(page, "https://fuzz.example/page")
    assert time.perf_counter() - started < 10 + 1  # the default time limit, plus a worker's start
    assert isinstance(out, str)
    out.encode("utf-8")
    assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in out)
