"""Hostile XML, made safe for feedparser: decoded, stripped of its DTD, and cut to bounded work.

Feed bytes are written by whoever controls the feed, so they are read as hostile. Before feedparser sees
an XML document it is decoded here (BOM, HTTP charset, XML declaration, else UTF-8 with a windows-1252
fallback per broken byte), characters XML forbids are dropped, a document declaring any entity is refused
and the prolog (XML declaration, comments, processing instructions and the DOCTYPE with its internal and
external subset) is replaced by a plain UTF-8 XML declaration. So expat never sees a DTD: no entity
expansion (billion laughs, quadratic blowup), no external entity or DTD is read, no default attributes.
Every scan here runs in time linear in the document's length.
"""

from __future__ import annotations

import codecs
import html
import html.entities
import itertools
import re
import xml.parsers.expat


class ParseError(Exception):
    """The document is not a feed at all."""



# Byte order marks, then the first characters of "<?xml" or "<" in encodings that are not ASCII-compatible.
_SNIFFED = (
    (b"\x00\x00\xfe\xff", "utf-32-be", 4),
    (b"\xff\xfe\x00\x00", "utf-32-le", 4),
    (b"\xef\xbb\xbf", "utf-8", 3),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<", "utf-16-be", 0),
    (b"<\x00", "utf-16-le", 0),
    (b"\x4c\x6f\xa7\x94", "cp037", 0),
)
_DECLARED_ENCODING = re.compile(rb"""\A\s{0,64}<\?xml[^>]{0,200}?\bencoding\s*=\s*["']([A-Za-z][\w.:+-]{0,39})["']""")
_HTTP_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?([A-Za-z0-9][\w.:+-]{0,39})""", re.I)
# Codecs that are no text encoding a feed could use, slow on long input, or able to make lone surrogates.
_REFUSED_CODECS = {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "utf-7", "undefined", "mbcs", "oem"}
# As browsers do: a Latin-1 or ASCII label means windows-1252; GB2312 and GBK are read as their superset.
_CODEC_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
                  "utf-8-sig": "utf-8"}
_CP1252 = [bytes([b]).decode("cp1252", "replace") for b in range(256)]
MAX_LEGACY_BYTES = 20_000  # broken bytes in a "UTF-8" document read one by one; past this the whole as windows-1252

# Characters XML 1.0 forbids; expat stops at the first one.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_PROLOG_SPACE = re.compile(r"\s*")
_DOCTYPE = re.compile(r"<!\s*doctype", re.I)
_ENTITY = re.compile(r"<!\s*entity", re.I)
# Inside the root element, what follows one of these up to its end is text, a comment or an instruction
_TEXT_SECTION = re.compile(r"<!\[CDATA\[|<!--|<\?")
_SECTION_END = {"<![CDATA[": "]]>", "<!--": "-->", "<?": "?>"}
_ROOT_START = re.compile(r"<[A-Za-z0-9_]")  # where feedparser's DOCTYPE filter stops looking
_SPACE_RUN = re.compile(r"\s{2,}")
_DOCTYPE_TOKEN = re.compile(r"""["'\[\]>]|<!--|<\?""")
# An "&" that starts no reference (as in "AT&T" or an unescaped "?a=1&b=2"): expat stops there.
_STRAY_AMPERSAND = re.compile(r"&(?!#[0-9]{1,16};|#[xX][0-9a-fA-F]{1,16};|[A-Za-z_:][\w.:-]{0,63};)")
_REFERENCE = re.compile(
    r"&(?:#[xX]([0-9a-fA-F]{1,16})|#([0-9]{1,16})|(?!(?:amp|lt|gt|quot|apos);)([A-Za-z_:][\w.:-]{0,63}));"
)
_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
_ENTRY_NAMES = ("item", "entry")
_ENTRY_END = re.compile(rb"</(?:\w+:)?(?:item|entry)\s*>", re.I)

# feedparser's work is bounded here, so that no feed keeps a parse thread for long (measured: 20-150 us per
# element when the document is well formed; its lenient parser, for the rest, takes up to 5 s per MB).
MAX_ENTRIES = 2000  # a feed is cut after this many entries (newest first, as feeds are written)
MAX_ELEMENTS = 50_000  # ... or after the last whole entry within this many elements
MAX_ATTRIBUTE_WORK = 1_000_000  # sum of squared attribute counts: the SAX layer looks attributes up one by one
# A document that is not well formed is cut before the lenient parser, which takes up to 15 us per "<".
LENIENT_MAX_MARKUP = 60_000  # ... after this many "<"
LENIENT_MAX_BYTES = 2 * 1024 * 1024  # ... or this many bytes


def _legacy_bytes(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: bytes that are not UTF-8 read as windows-1252 (mixed or mislabelled documents)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(_CP1252[b] for b in error.object[error.start : error.end]), error.end


codecs.register_error("aggregator.parse.cp1252", _legacy_bytes)


def _codec(label: str | bytes | None) -> str | None:
    """The Python codec for an encoding label when it is a usable ASCII-compatible text encoding."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    name = _CODEC_ALIASES.get(name, name)
    if name in _REFUSED_CODECS or not getattr(codecs.lookup(name), "_is_text_encoding", True):
        return None
    try:
        if "<?xml".encode(name) != b"<?xml":
            return None  # UTF-16, UTF-32 or EBCDIC named in a document read as ASCII: the label is wrong
    except UnicodeError:
        return None
    return name


def _sniff(content: bytes) -> tuple[str | None, int]:
    """The encoding told by a byte order mark or by how "<" is written, and the length of the mark."""
    for prefix, name, skip in _SNIFFED:
        if content.startswith(prefix):
            return name, skip
    head = content[:512]
    if b"\x00" in head[:64]:
        # Text before the root in UTF-16 without a mark: most odd or even bytes are zero.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > 0.4 * len(head[1::2]) and even < 0.1 * len(head[0::2]):
            return "utf-16-le", 0
        if even > 0.4 * len(head[0::2]) and odd < 0.1 * len(head[1::2]):
            return "utf-16-be", 0
    return None, 0


def _decode_utf8(data: bytes) -> str:
    """UTF-8, where bytes that are not UTF-8 are read as windows-1252 (feeds mislabel and mix both)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lossy = data.decode("utf-8", "replace")
    if lossy.count("\ufffd") - data.count(b"\xef\xbf\xbd") > MAX_LEGACY_BYTES:
        return data.decode("cp1252", "aggregator.parse.cp1252")
    return data.decode("utf-8", "aggregator.parse.cp1252")


def decode_document(content: bytes, content_type: str = "") -> str:
    """The text of an XML document: mark, HTTP charset, declaration, else UTF-8 (with windows-1252 bytes).

    A document that is valid UTF-8 with non-ASCII bytes is read as UTF-8 whatever its label says: the odds
    that text in any other encoding is valid UTF-8 by chance are negligible, while wrong labels are common.
    """
    sniffed, skip = _sniff(content)
    data = content[skip:]
    if sniffed and sniffed != "utf-8":
        return data.decode(sniffed, "replace")
    if sniffed == "utf-8":
        return _decode_utf8(data)
    charset = _HTTP_CHARSET.search(content_type)
    declared = _DECLARED_ENCODING.match(data[:1024])
    encoding = _codec(charset and charset.group(1)) or _codec(declared and declared.group(1))
    if encoding in (None, "utf-8"):
        return _decode_utf8(data)
    if not data.isascii():
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(encoding)
    except UnicodeError:
        return data.decode(encoding, "replace")


def _doctype_end(text: str, pos: int) -> int:
    """Where the DOCTYPE declaration whose keyword ends at ``pos`` ends, its internal subset included."""
    in_subset = False
    while (token := _DOCTYPE_TOKEN.search(text, pos)) is not None:
        mark = token.group()
        if mark in ('"', "'", "<!--", "<?"):
            closing = {"<!--": "-->", "<?": "?>"}.get(mark, mark)
            end = text.find(closing, token.end())
            if end < 0:
                return len(text)
            pos = end + len(closing)
            continue
        pos = token.end()
        if mark == "[":
            in_subset = True
        elif mark == "]":
            in_subset = False
        elif not in_subset:  # ">"
            return pos
    return len(text)


def _split_prolog(text: str) -> tuple[str, str]:
    """(the prolog: XML declaration, comments, processing instructions, DOCTYPE), (the rest) of ``text``."""
    pos, size = 0, len(text)
    while pos < size:
        pos = _PROLOG_SPACE.match(text, pos).end()
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            pos = size if end < 0 else end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            pos = size if end < 0 else end + 3
        elif (doctype := _DOCTYPE.match(text, pos)) is not None:
            pos = _doctype_end(text, doctype.end())
        else:
            break
    return text[:pos], text[pos:]


def _reference(match: re.Match) -> str:
    """What XML accepts for the reference ``match``: HTML names as numbers, other names and forbidden
    characters as text (as feedparser's lenient parser would show them)."""
    number, name = match.group(1) or match.group(2), match.group(3)
    if name is not None:
        codepoint = html.entities.name2codepoint.get(name)
        return f"&amp;{name};" if codepoint is None else f"&#{codepoint};"
    codepoint = int(number, 16 if match.group(1) else 10)
    if 0x80 <= codepoint <= 0x9F:  # as HTML reads them: windows-1252 characters
        return f"&#{ord(_CP1252[codepoint])};"
    if codepoint in (0x9, 0xA, 0xD) or 0x20 <= codepoint <= 0xD7FF or 0xE000 <= codepoint <= 0xFFFD or (
        0x10000 <= codepoint <= 0x10FFFF
    ):
        return match.group()
    return "&#xFFFD;"


def _fix_references(text: str) -> str:
    return _REFERENCE.sub(_reference, _STRAY_AMPERSAND.sub("&amp;", text))


def _fix_ampersands(body: str) -> str:
    """``body`` with its references and stray ampersands made acceptable to XML, CDATA sections left alone."""
    if "&" not in body:
        return body
    pieces: list[str] = []
    pos = 0
    while pos < len(body):
        start = body.find("<![CDATA[", pos)
        if start < 0:
            start = len(body)
        pieces.append(_fix_references(body[pos:start]))
        end = body.find("]]>", start + 9) if start < len(body) else -1
        if end < 0:  # no (more) CDATA, or one left open: the rest stays as it is
            pieces.append(body[start:])
            break
        pieces.append(body[start : end + 3])
        pos = end + 3
    return "".join(pieces)


def entity_declaration(text: str, start: int = 0) -> int | None:
    """Where ``text`` declares an entity in its markup from ``start`` on, or None.

    Inside a CDATA section, a comment or a processing instruction "<!ENTITY" is not markup (an article about
    XXE, say); one left open runs to the end of the document, which parsers disagree on, so a declaration
    after its opening counts. Linear: each stretch of the document is scanned once.
    """
    found = _ENTITY.search(text, start)
    position = start
    while found is not None:
        opening = _TEXT_SECTION.search(text, position, found.start())
        if opening is None:
            return found.start()
        end = text.find(_SECTION_END[opening.group()], opening.end())
        if end < 0:
            return found.start()
        position = end + len(_SECTION_END[opening.group()])
        if position > found.start():
            found = _ENTITY.search(text, position)
    return None


def sanitize_xml(content: bytes, content_type: str = "") -> tuple[bytes, str | None]:
    """(UTF-8 XML without a DTD that feedparser may read, "rss091n" for a Netscape RSS 0.91 DOCTYPE or None).

    Raises ParseError for a document that declares an entity anywhere in its markup (see entity_declaration):
    real feeds never need one, and refusing is the only safe answer to billion laughs, quadratic blowup and
    external entities.
    """
    text = _XML_FORBIDDEN.sub("", decode_document(content, content_type))
    prolog, body = _split_prolog(text)
    root = _ROOT_START.search(body)
    root_at = root.start() if root else len(body)
    # Before the root element no exception: feedparser's DOCTYPE filter reads declarations it finds there
    # (wherever they sit) back into a DTD of its own.
    head = len(prolog) + root_at
    found = _ENTITY.search(text, 0, head)
    declaration = found.start() if found else entity_declaration(text, head)
    if declaration is not None:
        raise ParseError(f"parse: feed declares entities (at character {declaration}); refused")
    # Text before the root is junk; its runs of blank lines are squeezed, as feedparser's own DOCTYPE
    # filter scans that part with a multi-line "^\s*" that takes quadratic time on them.
    if root_at:
        body = _SPACE_RUN.sub(" ", body[:root_at]) + body[root_at:]
    doctype = _DOCTYPE.search(prolog)
    version = "rss091n" if doctype and "netscape" in prolog[doctype.start() : doctype.start() + 500].lower() else None
    return (_XML_DECLARATION + _fix_ampersands(body)).encode("utf-8"), version


class _Stop(Exception):
    """Raised from the expat handlers to end the pre-pass early."""


def _char_boundary(data: bytes, cut: int) -> int:
    """``cut`` moved back to the start of a UTF-8 sequence."""
    while 0 < cut < len(data) and 0x80 <= data[cut] < 0xC0:
        cut -= 1
    return cut


def bound_work(document: bytes) -> tuple[bytes, str | None]:
    """(``document`` cut so that feedparser's work on it is bounded, why it was cut or None).

    One pass of expat (no DTD is left to expand) with namespaces, as feedparser's strict parser runs it,
    counts elements, attributes and entries. A well-formed document past a limit is cut after its last
    whole entry, with its open elements closed again (ParseError when there is none). One that is not well
    formed (feedparser then falls back to its much slower lenient parser) is cut to LENIENT_MAX_MARKUP tags
    and LENIENT_MAX_BYTES, at an entry's end when there is one.
    """
    parser = xml.parsers.expat.ParserCreate("utf-8", namespace_separator="\x01")
    parser.namespace_prefixes = True
    open_names: list[str] = []  # qualified names, as written, of the elements open at this point
    seen = {"elements": 0, "entries": 0, "attributes": 0}
    last_entry: list = []  # (byte offset just after the last entry's end tag, the names then still open)
    reason: list[str] = []

    def start(name: str, attributes: dict) -> None:
        parts = name.split("\x01")  # "uri local prefix", "uri local" or "local"
        local = parts[1] if len(parts) > 1 else parts[0]
        open_names.append(f"{parts[2]}:{local}" if len(parts) == 3 else local)
        seen["elements"] += 1
        seen["attributes"] += len(attributes) ** 2
        if local.lower() in _ENTRY_NAMES and seen["entries"] >= MAX_ENTRIES:
            reason.append(f"more than {MAX_ENTRIES} entries")
        elif seen["elements"] > MAX_ELEMENTS:
            reason.append(f"more than {MAX_ELEMENTS} elements")
        elif seen["attributes"] > MAX_ATTRIBUTE_WORK:
            reason.append("too many attributes")
        if reason:
            raise _Stop

    def end(name: str) -> None:
        qname = open_names.pop()
        if qname.rsplit(":", 1)[-1].lower() in _ENTRY_NAMES:
            seen["entries"] += 1
            last_entry[:] = [document.find(b">", parser.CurrentByteIndex) + 1, tuple(open_names)]

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(document, True)
    except _Stop:
        if not last_entry or not last_entry[1]:
            raise ParseError(f"parse: feed refused: {reason[0]} before its first entry") from None
        cut, still_open = last_entry
        closing = "".join(f"</{qname}>" for qname in reversed(still_open)).encode("utf-8")
        return document[:cut] + closing, f"feed cut after {seen['entries']} entries: {reason[0]}"
    except (xml.parsers.expat.ExpatError, RecursionError, ValueError):
        return _bound_lenient(document)
    return document, None


def _bound_lenient(document: bytes) -> tuple[bytes, str | None]:
    """``document`` cut to LENIENT_MAX_MARKUP "<" and LENIENT_MAX_BYTES, after an entry's end when it can."""
    limit = min(len(document), LENIENT_MAX_BYTES)
    if document.count(b"<", 0, limit) > LENIENT_MAX_MARKUP:
        tags = re.finditer(rb"<", document)
        limit = next(itertools.islice(tags, LENIENT_MAX_MARKUP, None)).start()
    if limit == len(document):
        return document, None
    entry_ends = [end.end() for end in _ENTRY_END.finditer(document, limit // 2, limit)]
    cut = entry_ends[-1] if entry_ends else _char_boundary(document, limit)
    return document[:cut], (f"feed is not well-formed XML and longer than {LENIENT_MAX_MARKUP} tags or "
                            f"{LENIENT_MAX_BYTES} bytes: cut after {cut} bytes")
