"""Response bodies: read under a size cap, decoded here in bounded pieces, and turned into text.

The body is read raw and decompressed incrementally, so the cap on the *decompressed* size holds for
gzip, deflate and (when a bounded decoder is installed) brotli.
"""

from __future__ import annotations

import codecs
import importlib
import re
import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx

    from aggregator.fetch import FetchResult

MAX_CONTENT_ENCODINGS = 3  # "gzip, gzip" is decoded; a deeper stack is refused
_DECODE_PIECE = 64 * 1024  # most bytes any decoder produces per step, so inflating stays bounded


class BodyRefused(Exception):
    """Raised instead of returning a body that breaks a limit or cannot be decoded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip, or HTTP "deflate" (zlib-wrapped, or raw as some servers send it), inflated in bounded steps.

    Anything after the end of the first compressed stream is ignored, as httpx and browsers do.
    """

    def __init__(self, gzip: bool) -> None:
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self._head = b""  # "deflate": the first bytes, until there are enough to tell zlib from raw

    def _start(self, data: bytes) -> bytes:
        data, self._head = self._head + data, b""
        if len(data) < 2:
            self._head = data
            return b""
        zlib_header = data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and int.from_bytes(data[:2], "big") % 31 == 0
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        return data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflater is None:
            data = self._start(data)
            if self._inflater is None:
                return
        inflater = self._inflater
        while not inflater.eof:
            piece = inflater.decompress(data, _DECODE_PIECE)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _DECODE_PIECE:
                break  # all input used and nothing held back: wait for more

    def flush(self) -> Iterator[bytes]:
        if self._inflater is not None and not self._inflater.eof:
            # Every input byte went through decompress() already, so this is at most the window.
            tail = self._inflater.flush()
            if tail:
                yield tail


class _BrotliDecoder:
    """brotli, decoded in bounded steps (needs the ``output_buffer_limit`` of brotli >= 1.2)."""

    def __init__(self, module: ModuleType) -> None:
        self._decompressor = module.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return  # trailing bytes after the end of the stream are ignored, as for gzip
        piece = decompressor.process(data, output_buffer_limit=_DECODE_PIECE)
        while piece:
            yield piece
            # The decoder may hold more output for input it already took: drain it before new input.
            piece = decompressor.process(b"", output_buffer_limit=_DECODE_PIECE)

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _bounded_brotli() -> ModuleType | None:
    """A brotli module whose decoder can limit its output per step (brotli >= 1.2), or None.

    Without one, ``br`` is not offered in Accept-Encoding, and a server sending it anyway is refused
    rather than decoded in one unbounded step.
    """
    for name in ("brotli", "brotlicffi"):
        try:
            module = importlib.import_module(name)
            decompressor = module.Decompressor()
            decompressor.process(b"", output_buffer_limit=1)
            decompressor.can_accept_more_data()
        except Exception:  # not installed, or an older API without bounded output
            continue
        return module
    return None


_BROTLI = _bounded_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI else "gzip, deflate"
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
if _BROTLI is not None and isinstance(getattr(_BROTLI, "error", None), type):
    _DECODE_ERRORS += (_BROTLI.error,)


def _decoder(encoding: str) -> _Decoder | None:
    if encoding in ("gzip", "x-gzip"):
        return _ZlibDecoder(gzip=True)
    if encoding == "deflate":
        return _ZlibDecoder(gzip=False)
    if encoding == "br" and _BROTLI is not None:
        return _BrotliDecoder(_BROTLI)
    return None


def _decoders(headers: httpx.Headers) -> list[_Decoder]:
    """Decoders for Content-Encoding, outermost first (the coding listed last was applied last)."""
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CONTENT_ENCODINGS:
        raise BodyRefused(f"too many content encodings ({len(codings)}, at most {MAX_CONTENT_ENCODINGS})")
    decoders = []
    for coding in reversed(codings):
        decoder = _decoder(coding)
        if decoder is None:
            raise BodyRefused(f"unsupported Content-Encoding {coding!r}")
        decoders.append(decoder)
    return decoders


def _decode(decoders: list[_Decoder], data: bytes, *, final: bool = False) -> Iterator[bytes]:
    """Push ``data`` through the decoder chain lazily, so no stage ever holds more than one piece."""
    if not decoders:
        if data:
            yield data
        return
    outer, rest = decoders[0], decoders[1:]
    for piece in outer.feed(data):
        yield from _decode(rest, piece)
    if final:
        for piece in outer.flush():
            yield from _decode(rest, piece)
        yield from _decode(rest, b"", final=True)


def _too_large(max_bytes: int, detail: str = "") -> BodyRefused:
    return BodyRefused(f"response larger than {max_bytes} bytes{detail}")


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Read the raw body and decode it here, so ``max_bytes`` bounds the decompressed size and memory.

    The compressed size counts against the cap too: a stream that inflates to nothing cannot be
    used to keep the connection busy for free.
    """
    length = (response.headers.get("content-length") or "").strip()
    if length.isascii() and length.isdigit() and (len(length) > 19 or int(length) > max_bytes):
        raise _too_large(max_bytes, f" (Content-Length {length[:24]})")
    decoders = _decoders(response.headers)
    body = bytearray()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes)
            for piece in _decode(decoders, chunk):
                if len(body) + len(piece) > max_bytes:
                    raise _too_large(max_bytes, " once decompressed" if decoders else "")
                body += piece
        for piece in _decode(decoders, b"", final=True):
            if len(body) + len(piece) > max_bytes:
                raise _too_large(max_bytes, " once decompressed")
            body += piece
    except _DECODE_ERRORS as exc:
        raise BodyRefused(f"cannot decode the response body ({exc})") from None
    return bytes(body)


# A BOM is authoritative (it beats the header, as in browsers).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
# Browsers read these labels as windows-1252, and pages labelled latin-1 rely on its curly quotes.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"})


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when the label is unknown."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _meta_charset(content: bytes) -> str | None:
    match = _META_CHARSET.search(content[:2048])
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    # The tag was readable as ASCII, so the bytes cannot really be UTF-16 (the HTML spec's rule).
    return "utf-8" if label.startswith("utf-16") else label


def decode_html(result: FetchResult) -> str:
    """Page bytes to text: BOM, else Content-Type charset, else <meta> charset, else UTF-8."""
    content = result.content
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, errors="replace")
    header = _HEADER_CHARSET.search(result.headers.get("content-type", ""))
    for label in (header.group(1) if header else None, _meta_charset(content)):
        encoding = _codec(label)
        if encoding:
            return content.decode(encoding, errors="replace")
    return content.decode("utf-8", errors="replace")
