"""OPML import and export of the feed list, and merging imported feeds into ``feeds.yaml``.

OPML files come from other readers and from the web, so they are parsed defensively: with
``defusedxml`` when it is installed, otherwise with a plain expat parser that refuses any document
carrying a DOCTYPE or entity declaration before anything in it is expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from xml.parsers import expat

import yaml
from pydantic import ValidationError

from .config import ConfigError, FeedConfig, parse_config
from .digest import clean_text, safe_url

try:  # optional hardening; the fallback below is safe on its own
    from defusedxml import DefusedXmlException as _DefusedXmlException
    from defusedxml import ElementTree as _defused_et
except ImportError:  # pragma: no cover - depends on the environment
    _defused_et = None
    _DefusedXmlException = ValueError

MAX_OPML_BYTES = 10 * 1024 * 1024
_MAX_DEPTH = 64


class OpmlError(ValueError):
    """The OPML document is not well-formed, not OPML, or uses refused XML features."""


# --------------------------------------------------------------------------- export


# Our own outline attributes (OPML lets an outline carry any): the settings other readers have no word for,
# written only when they differ from the default, so that an export read back loses nothing.
_INTERVAL, _ENABLED, _FULL_TEXT = "aggregatorInterval", "aggregatorEnabled", "aggregatorFullText"


def export_opml(feeds: list[FeedConfig], title: str = "aggregator feeds") -> str:
    """The feeds as an OPML 2.0 document; tags go into the ``category`` attribute, comma separated, and
    interval, enabled and full_text into attributes of our own."""
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = clean_text(title) or "aggregator feeds"
    body = ET.SubElement(root, "body")
    for feed in feeds:
        name = clean_text(feed.name)
        attrs = {"text": name, "title": name, "type": "rss", "xmlUrl": clean_text(feed.url)}
        tags = [clean_text(tag).replace(",", " ").strip() for tag in feed.tags]
        tags = [tag for tag in tags if tag]
        if tags:
            attrs["category"] = ",".join(tags)
        if feed.interval is not None:
            attrs[_INTERVAL] = _format_duration(feed.interval)
        if not feed.enabled:
            attrs[_ENABLED] = "false"
        if not feed.full_text:
            attrs[_FULL_TEXT] = "false"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- import


def _refuse_declarations(*_args: object) -> None:
    raise OpmlError("refusing an OPML document with a DOCTYPE or entity declaration")


def _parse_expat(data: bytes | str) -> ET.Element:
    """Parse with expat, refusing DTDs and entities; builds an ElementTree element."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_declarations
    parser.EntityDeclHandler = _refuse_declarations
    parser.UnparsedEntityDeclHandler = _refuse_declarations
    parser.ExternalEntityRefHandler = _refuse_declarations
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from None
    return builder.close()


def _parse(data: bytes | str) -> ET.Element:
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"OPML document larger than {MAX_OPML_BYTES} bytes")
    if _defused_et is None:
        return _parse_expat(data)
    try:
        return _defused_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except _DefusedXmlException:
        raise OpmlError("refusing an OPML document with a DOCTYPE or entity declaration") from None
    except ET.ParseError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from None


def _local(tag: object) -> str:
    name = str(tag)
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _attr(elem: ET.Element, name: str) -> str | None:
    """Attribute ``name``, matched case-insensitively (exporters disagree on ``xmlUrl``/``xmlurl``)."""
    wanted = name.lower()
    for key, value in elem.attrib.items():
        if _local(key).lower() == wanted:
            return value
    return None


def _url_key(url: str) -> str:
    """A comparison key for feed URLs: scheme and host lower-cased, fragment dropped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def _dedup(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item and item.casefold() not in seen:
            seen.add(item.casefold())
            out.append(item)
    return out


def _walk(elem: ET.Element, folders: list[str], out: list[tuple[ET.Element, list[str]]], depth: int,
          skipped: Counter[str]) -> None:
    if depth > _MAX_DEPTH:
        raise OpmlError(f"OPML outlines nested more than {_MAX_DEPTH} levels deep")
    for child in elem:
        if _local(child.tag) != "outline":
            continue
        if _attr(child, "xmlUrl") is not None:
            out.append((child, folders))
            continue
        if not any(_local(grandchild.tag) == "outline" for grandchild in child):
            skipped[WITHOUT_URL] += 1  # neither a feed nor a folder with anything in it
            continue
        label = clean_text(_attr(child, "text") or _attr(child, "title"))
        _walk(child, folders + [label] if label else folders, out, depth + 1, skipped)


SKIP_REASONS = WITHOUT_URL, NOT_HTTP, BAD_URL, TWICE, INVALID = (
    "without xmlUrl", "not http(s)", "not a valid URL", "listed twice", "not a valid feed"
)


@dataclass
class OpmlImport:
    """The feeds an OPML document lists, and how many outlines were left out, by reason."""

    feeds: list[FeedConfig]
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)  # our own attributes that did not validate, by name

    def skipped_summary(self) -> str | None:
        """``skipped 3 outlines: 2 without xmlUrl, 1 not http(s)``, or None when nothing was skipped."""
        total = sum(self.skipped.values())
        if not total:
            return None
        ordered = sorted(self.skipped.items(), key=lambda item: (-item[1], SKIP_REASONS.index(item[0])))
        reasons = ", ".join(f"{count} {reason}" for reason, count in ordered)
        return f"skipped {total} outline{'s' if total > 1 else ''}: {reasons}"

    def ignored_summary(self) -> str | None:
        """``ignored 2 invalid settings: 2 aggregatorInterval``, or None."""
        total = sum(self.ignored.values())
        if not total:
            return None
        names = ", ".join(f"{count} {name}" for name, count in sorted(self.ignored.items()))
        return f"ignored {total} invalid setting{'s' if total > 1 else ''}: {names}"


def _unusable_url(url: str | None) -> str:
    """Why ``url`` (refused by :func:`safe_url`) cannot be a feed's address."""
    if not url or not url.strip():
        return WITHOUT_URL
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return BAD_URL
    return BAD_URL if scheme in ("http", "https") else NOT_HTTP


def import_opml(data: bytes | str) -> list[FeedConfig]:
    """Feeds listed in an OPML document (see :func:`read_opml`)."""
    return read_opml(data).feeds


def read_opml(data: bytes | str) -> OpmlImport:
    """Feeds listed in an OPML document, with the outlines left out counted by reason.

    Folders become tags (together with any ``category`` attribute), outlines without an http(s)
    ``xmlUrl`` are skipped, a URL listed twice is kept once and clashing names get `` (2)``, `` (3)``...
    """
    root = _parse(data)
    if _local(root.tag) != "opml":
        raise OpmlError(f"not an OPML document (root element is <{clean_text(_local(root.tag))}>)")
    body = next((child for child in root if _local(child.tag) == "body"), None)
    if body is None:
        raise OpmlError("OPML document has no <body>")
    found: list[tuple[ET.Element, list[str]]] = []
    skipped: Counter[str] = Counter()
    ignored: Counter[str] = Counter()
    _walk(body, [], found, 0, skipped)

    feeds: list[FeedConfig] = []
    seen_urls: set[str] = set()
    names: set[str] = set()
    for outline, folders in found:
        url = safe_url(_attr(outline, "xmlUrl"))
        if url is None:
            skipped[_unusable_url(_attr(outline, "xmlUrl"))] += 1
            continue
        key = _url_key(url)
        if key in seen_urls:
            skipped[TWICE] += 1
            continue
        categories = []
        for category in (_attr(outline, "category") or "").split(","):
            categories.append(clean_text(category).strip("/").strip())
        tags = _dedup(folders + categories)
        name = clean_text(_attr(outline, "text") or _attr(outline, "title")) or urlsplit(url).hostname or url
        name = _unique_name(name, names)
        try:
            feed = FeedConfig(name=name, url=url, tags=tags)
        except ValidationError:
            skipped[INVALID] += 1
            continue
        feed = _with_own_settings(feed, outline, ignored)
        seen_urls.add(key)
        names.add(name)
        feeds.append(feed)
    return OpmlImport(feeds, skipped, ignored)


def _with_own_settings(feed: FeedConfig, outline: ET.Element, ignored: Counter[str]) -> FeedConfig:
    """``feed`` with the settings our own attributes carry; one that does not validate is left out (and
    counted in ``ignored`` by attribute name)."""
    settings: dict[str, tuple[str, object]] = {}
    if (interval := _attr(outline, _INTERVAL)) is not None:
        settings["interval"] = (_INTERVAL, clean_text(interval))
    for key, attribute in (("enabled", _ENABLED), ("full_text", _FULL_TEXT)):
        if (raw := _attr(outline, attribute)) is None:
            continue
        value = raw.strip().lower()
        settings[key] = (attribute, value == "true" if value in ("true", "false") else value)
    for key, (attribute, value) in settings.items():
        try:  # validated alone, so one bad attribute costs only itself
            if isinstance(value, str) and key != "interval":
                raise ValueError(value)  # only "true" and "false", never YAML's yes/no/on/off
            checked = FeedConfig(name=feed.name, url=feed.url, **{key: value})
        except (ValidationError, ValueError):
            ignored[attribute] += 1
            continue
        feed = feed.model_copy(update={key: getattr(checked, key)})
    return feed


# --------------------------------------------------------------------------- merge into feeds.yaml


def _format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _feed_data(feed: FeedConfig) -> dict:
    data: dict = {"name": feed.name, "url": feed.url}
    if feed.interval is not None:
        data["interval"] = _format_duration(feed.interval)
    if feed.tags:
        data["tags"] = list(feed.tags)
    if not feed.enabled:
        data["enabled"] = False
    if not feed.full_text:
        data["full_text"] = False
    return data


def _block_items(feeds: list[FeedConfig], indent: int) -> str:
    """The feeds as block-sequence items, each line indented by ``indent`` spaces."""
    dumped = yaml.safe_dump(
        [_feed_data(feed) for feed in feeds],
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=4096,
    )
    pad = " " * indent
    return "".join(pad + line + "\n" for line in dumped.splitlines())


def _flow_item(feed: FeedConfig) -> str:
    dumped = yaml.safe_dump(_feed_data(feed), sort_keys=False, allow_unicode=True, default_flow_style=True, width=4096)
    return dumped.strip()


def _content_end(node: yaml.Node) -> int:
    """Index just past the last character of ``node``'s own content (block end marks overshoot)."""
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        return node.end_mark.index
    if isinstance(node, yaml.MappingNode):
        if not node.value:
            return node.end_mark.index
        key, value = node.value[-1]
        return max(_content_end(key), _content_end(value))
    if not node.value:
        return node.end_mark.index
    return _content_end(node.value[-1])


def _after_line(text: str, index: int) -> int:
    """Start of the line after the one holding the character before ``index``."""
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _insert_lines(text: str, at: int, block: str) -> str:
    if at >= len(text) and text and not text.endswith("\n"):
        text += "\n"
        at = len(text)
    return text[:at] + block + text[at:]


def merge_feeds_into_yaml(yaml_text: str, new_feeds: list[FeedConfig]) -> tuple[str, int]:
    """Append the feeds whose URL ``yaml_text`` does not list yet to its ``feeds:`` list.

    The existing text, comments included, is kept as it is; new entries are added after the last
    feed (or under a new ``feeds:`` key). Names that clash with existing ones get `` (2)``...
    Returns the new text and the number of feeds added; the result always passes :func:`parse_config`.
    Raises :class:`ConfigError` when ``yaml_text`` itself is not a valid config (an empty ``feeds:``
    key is accepted and filled in).
    """
    crlf = "\r\n" in yaml_text
    text = yaml_text.replace("\r\n", "\n")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None  # parse_config below reports it with a line number
    pair = None
    if isinstance(root, yaml.MappingNode):
        pair = next(((k, v) for k, v in root.value if k.value == "feeds"), None)
    empty_value = pair is not None and isinstance(pair[1], yaml.ScalarNode) and pair[1].tag == "tag:yaml.org,2002:null"
    if empty_value:  # `feeds:` with nothing under it yet: validate the rest as if it said []
        value = pair[1]
        config = parse_config(text[: value.start_mark.index] + " []" + text[value.end_mark.index :])
    else:
        config = parse_config(yaml_text)
    known = {_url_key(feed.url) for feed in config.feeds}
    names = {feed.name for feed in config.feeds}
    additions: list[FeedConfig] = []
    for feed in new_feeds:
        key = _url_key(feed.url)
        if key in known:
            continue
        known.add(key)
        name = _unique_name(feed.name, names)
        names.add(name)
        additions.append(feed.model_copy(update={"name": name}))
    if not additions:
        return yaml_text, 0

    if root is not None and root.flow_style:
        raise ConfigError("cannot add feeds to a config written as a flow-style mapping")

    if pair is None:
        column = root.value[0][0].start_mark.column if isinstance(root, yaml.MappingNode) and root.value else 0
        block = " " * column + "feeds:\n" + _block_items(additions, column + 2)
        result = _insert_lines(text, len(text), block)
    else:
        key, value = pair
        if isinstance(value, yaml.SequenceNode) and value.value and value.flow_style:
            at = _content_end(value.value[-1])
            extra = "".join(", " + _flow_item(feed) for feed in additions)
            result = text[:at] + extra + text[at:]
        elif isinstance(value, yaml.SequenceNode) and value.value:
            column = value.start_mark.column  # the column of the first item's dash
            at = _after_line(text, _content_end(value.value[-1]))
            result = _insert_lines(text, at, _block_items(additions, column))
        else:  # `feeds:`, `feeds: ~`, `feeds: []`: drop the empty value, list the feeds below the key
            before, after = text[: value.start_mark.index], text[value.end_mark.index :]
            if not after or after.startswith("\n"):
                before = before.rstrip(" \t")
            text = before + after
            at = _after_line(text, key.end_mark.index)
            result = _insert_lines(text, at, _block_items(additions, key.start_mark.column + 2))

    if crlf:
        result = result.replace("\n", "\r\n")
    parse_config(result)  # the merge must never produce a file the loader rejects
    return result, len(additions)
