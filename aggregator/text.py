"""Text features shared by dedup and clustering: tokens, shingles, hashes and term weights."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Container

import numpy as np

WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.U)  # a word as written, case kept

# Function words of the languages most feeds are written in; they say nothing about which event a text covers.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    says said say new news update updates live us one two also via amid may might must shall s t ll re ve d m
    der die das und ist nicht ein eine einer eines dem den des mit von zu im auf für fur sich auch als bei nach
    wie aus wird werden hat sind oder noch nur über uber vor zum zur es sie er ich wir ihr
    le la les un une des du de et est en que qui dans pour pas sur au aux avec par plus ce cette ces son sa ses
    il elle ils elles nous vous ne se lui leur été ete être etre ont
    el los las una unos unas y es en que por con para del al se su sus lo como más mas pero o ya este esta
    il lo gli di da con per tra fra che non è e
    o os as um uma em no na nos nas do dos da das ao à com por para que não nao é
    и в во не что он она оно они на я с со как а то все всё так его её ее но да к у же вы за бы по только
    от из о об до для при без под над через после перед между это этот эта эти был была было были быть будет
    уже или ли если когда где кто чем тоже также ещё еще мы их им ему ей нас вас свой своей который которая
    которые которых
    """.split()
)

# Scripts written without spaces between words (Han, Hiragana, Katakana and, often enough, Hangul): a run of
# their letters is a phrase, not a word, so it is cut into overlapping character pairs, the usual stand-in for
# words in Chinese and Japanese retrieval ("东京大学" -> "东京", "京大", "大学").
_CJK = (
    "\u1100-\u11ff\u3005\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
)
_HAS_CJK = re.compile(f"[{_CJK}]")
_CJK_OR_OTHER = re.compile(f"[{_CJK}]+|[^{_CJK}]+")
_IS_CJK = re.compile(f"[{_CJK}]")


def fold(text: str) -> str:
    """Lower-case, with compatibility characters folded (ﬁ -> fi, full-width digits -> digits)."""
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> list[str]:
    """Every word of ``text``, lower-cased, in order (for shingles and hashes).

    Runs of Chinese, Japanese or Korean letters become their overlapping character bigrams (a lone letter
    stays itself), so that texts in those scripts get word-like tokens too.
    """
    found = _word_tokens(fold(text).replace("’", "'"))  # the apostrophe's two forms join a word alike
    if not _has_cjk(text):
        return found
    out: list[str] = []
    for word in found:
        if not _HAS_CJK.search(word):
            out.append(word)
            continue
        for part in _CJK_OR_OTHER.findall(word):
            if not _IS_CJK.match(part):
                out.append(part)
            elif len(part) == 1:
                out.append(part)
            else:
                out.extend(part[i : i + 2] for i in range(len(part) - 1))
    return out


def _word_tokens(text: str) -> list[str]:
    """``WORD.findall(text)``, twice as fast: no word spans white space, and most pieces between white space are
    one word as they stand (letters and digits only, ``str.isalnum`` being the regex's letter or digit), or once a
    trailing full stop or comma is cut; only the others go through the regex."""
    found: list[str] = []
    append = found.append
    for piece in text.split():
        if piece.isalnum():
            append(piece)
            continue
        core = piece.rstrip(".,")
        if core.isalnum():
            append(core)
        else:
            found += WORD.findall(piece)
    return found


# Below U+1100 and in the punctuation block (quotes, dashes) there is no CJK letter: most texts hold none of
# the other characters, and searching for those is much cheaper than for the CJK ranges themselves.
_BEYOND_WESTERN = re.compile("[^\x00-\u10ff\u2000-\u206f]")


def _has_cjk(text: str) -> bool:
    return not text.isascii() and _BEYOND_WESTERN.search(text) is not None and _HAS_CJK.search(text) is not None


def _is_cjk(word: str) -> bool:
    return _IS_CJK.match(word) is not None


def stem(word: str) -> str:
    """A light English plural/possessive stripper: enough to match 'summits' with 'summit'."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Content words of ``text``: stop words and one-letter tokens dropped, lightly stemmed; an initialism written
    with dots is the one written without ("U.S." as "US", a stop word, "U.K." as "UK")."""
    found = (_DOTTED.sub("", w) if "." in w else w for w in words(text))
    stems = (stem(w) for w in found if w not in STOPWORDS and (len(w) > 1 or w.isdigit() or _is_cjk(w)))
    return [w for w in stems if w not in STOPWORDS]  # "here's", "it's": a stop word once its "'s" goes


_DOTTED = re.compile(r"(?<=^[^\W\d_])\.|(?<=\.[^\W\d_])\.")


# Tags that aggregators and outlets put around a headline: the outlet's name ("... - Reuters", "... | Fox News"),
# an author ("... | Cas Mudde") or the item's format ("VIDEO: ...", "UPDATE 2-...", "... – video"). They say who
# published the item or how, not what it tells, and a tag shared by many headlines of one outlet (or of every
# outlet: "video") is a shared word that joins unrelated stories. Only a segment on the headline's edge, set off
# by a separator, is a tag; the headline itself keeps at least _HEADLINE_WORDS words. Measured by
# scripts/eval_variants.py on headlines tagged as aggregators show them, without a source: googlenews-t 0.842 ->
# 0.848 (0.851 untagged; with the learned tags of Clusterer, 0.851), syndication-dev headlines 0.967 -> 0.980,
# their ledes 0.600 -> 0.617 (0.618 before title-case headlines kept their name-like segments); the real feed
# headlines (author and format tags) 0.911 -> 0.914; the rest unchanged.
_FORMAT_WORDS = (
    r"video|videos|watch|live|live updates?|live blog|breaking(?: news)?|update(?: \d+)?|updated|exclusive|opinion"
    r"|analysis|editorial|explainer|factbox|photos?|pictures|in pictures|gallery|podcast|audio|listen|the latest"
    r"|as it happened|interview|review|comment|wrapup(?: \d+)?|corrected|refile|rpt|timeline|insight|special report"
)
_FORMAT = re.compile(rf"(?:{_FORMAT_WORDS})[!.]?", re.I)
# "(VIDEO) ...", "VIDEO: ...", "UPDATE 2-Headline" (a hyphen right before a capital), "Live - ..."
_LEADING_FORMAT = re.compile(
    rf"^\s*(?:[(\[](?:{_FORMAT_WORDS})[)\]]\s*[:|–—-]?|(?:{_FORMAT_WORDS})\s*(?:[:|–—]|-(?!\w)|-(?=(?-i:[A-Z]))))\s*",
    re.I,
)
# "... (VIDEO)", searched in the last _FORMAT_CHARS characters
_BRACKETED_FORMAT = re.compile(rf"[(\[](?:{_FORMAT_WORDS})[)\]]$", re.I)
_FORMAT_CHARS = 30
# separators set off by spaces, before a trailing tag
_SEPARATORS = (" - ", " | ", " – ", " — ", " : ", " · ")
_TAG_WORD = re.compile(r"(?:[A-Z][\w'’.&!-]*|&|of|the|and|de|du|la|le|el|del|da|der|on|at|in|for|news|online)$")
_HEADLINE_WORDS = 3
_TAG_WORDS = 4


def headline(title: str, source: str = "", tags: Container[str] = ()) -> str:
    """``title`` without the outlet, author and format tags on its edges (see above).

    A trailing segment after " - ", " | ", " – ", " : " is a tag when it is a format word ("– video"), names
    ``source``, is one of ``tags`` (as :func:`edge_segment` gives it: what the stream showed to be a tag), or
    looks like a name: at most four words, each capitalised (or a connective: "of", "the"), no figure. A
    leading one when it is a format word ("VIDEO:", "UPDATE 2-", "(PHOTOS)").
    """
    text = title.strip()
    names = True
    for _ in range(3):  # "LIVE: ... – video | Outlet": a tag each pass, at most three
        stripped, was_format = _strip_trailing(text, source, tags, names)
        # names are the outermost tags ("... – video | Outlet", "... · Best of · The A.V. Club"): a name-like
        # segment before a format tag is the headline's own ("Echoes of the Past : The Hotel Syracuse (photos)")
        names = names and not was_format
        if stripped == text:
            stripped = _strip_leading(text)
        if stripped == text:
            break
        text = stripped
    return text


def _enough(text: str) -> bool:
    return len(text.split()) >= _HEADLINE_WORDS


def _strip_leading(text: str) -> str:
    match = _LEADING_FORMAT.match(text)
    return text[match.end() :] if match and _enough(text[match.end() :]) else text


def _strip_trailing(text: str, source: str, tags: Container[str], names: bool) -> tuple[str, bool]:
    """``text`` without its trailing tag, and whether that was a format tag (``names``: a name may be one)."""
    if text.endswith((")", "]")):
        match = _BRACKETED_FORMAT.search(text, max(0, len(text) - _FORMAT_CHARS))
        if match and _enough(text[: match.start()]):
            return text[: match.start()].rstrip(), True
    found = _last_segment(text)
    if found is None:
        return text, False
    rest, segment = found
    if _FORMAT.fullmatch(segment):
        return rest, True
    # In a headline written in title case every segment looks like a name ("Fed Holds Rates - Yellen Says Economy
    # Strong"), so there only the source's name and the tags the stream showed count.
    if names and (_names_source(segment, source) or (_looks_like_name(segment) and not _title_case(rest))
                  or (tags and _letters(segment) in tags)):
        return rest, False
    return text, False


def _title_case(text: str) -> bool:
    """Whether ``text`` capitalises its words (at least three in four of those of four letters or more after the
    first), as many outlets write headlines."""
    long_words = [word for word in text.split()[1:] if len(word) >= 4 and word[0].isalpha()]
    return len(long_words) >= 2 and sum(word[0].isupper() for word in long_words) * 4 >= 3 * len(long_words)


def _last_segment(text: str) -> tuple[str, str] | None:
    """(the rest, the segment) for the segment after ``text``'s last separator, if the rest has enough words and
    the segment neither a colon nor a bar (a subtitle, not a tag)."""
    at = max(map(text.rfind, _SEPARATORS))
    if at < 0:
        return None
    rest, segment = text[:at].rstrip(), text[at + 3 :].strip()
    if not segment or ":" in segment or "|" in segment or not _enough(rest):
        return None
    return rest, segment


def edge_segment(title: str) -> tuple[str, str] | None:
    """(the last segment of ``title`` after a separator, as a key; the rest) when the segment is short enough to
    be a tag (at most six words) and the rest long enough to be a headline; else None."""
    found = _last_segment(title.strip())
    if found is None or len(found[1].split()) > _TAG_WORDS + 2:
        return None
    return _letters(found[1]), found[0]


def _names_source(segment: str, source: str) -> bool:
    if not source:
        return False
    key, outlet = _letters(segment), _letters(source)
    return bool(key) and bool(outlet) and (key in outlet or outlet in key)


def _letters(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum())


def _looks_like_name(segment: str) -> bool:
    tokens = segment.split()
    return (0 < len(tokens) <= _TAG_WORDS and not any(ch.isdigit() for ch in segment)
            and tokens[0][0].isupper() and all(_TAG_WORD.match(token) for token in tokens))


def shingle_hashes(tokens: list[str], size: int) -> np.ndarray:
    """Distinct 32-bit hashes of the word ``size``-grams of ``tokens`` (of the whole text when it is shorter).

    Each word is hashed once (CRC-32) and a shingle's hash is a polynomial over its words' hashes, computed for
    all shingles at once: ten times cheaper than hashing every shingle's bytes, and stable across processes,
    which stored signatures need.
    """
    if not tokens:
        return np.zeros(0, dtype=np.uint32)
    # Every word hashed where it stands, C calls end to end: cheaper than hashing each distinct word once
    # through a dict, which costs a Python step a word.
    word_hashes = np.fromiter(map(zlib.crc32, map(str.encode, tokens)), dtype=np.uint32, count=len(tokens))
    size = min(size, len(tokens))
    count = len(tokens) - size + 1
    # 32-bit arithmetic wraps modulo 2**32 by itself: in place, no masking, half the memory of 64 bits
    combined = word_hashes[:count].copy()
    for offset in range(1, size):
        combined *= _POLY
        combined += word_hashes[offset : offset + count]
    # A final avalanche step, so shingles that differ in one word differ in every bit.
    combined ^= combined >> _SHIFT16
    combined *= _MIX
    combined ^= combined >> _SHIFT13
    return _distinct(combined)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct ``values``, sorted (np.unique without its overhead, which a short array feels)."""
    values.sort()
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


_POLY = np.uint32(0x01000193)
_MIX = np.uint32(0x85EBCA6B)
_SHIFT16, _SHIFT13 = np.uint32(16), np.uint32(13)


def content_hash(title: str, text: str, body_words: list[str] | None = None) -> str:
    """A hash of the normalised body (the title when there is no body): equal for byte-different copies."""
    body = words(text) if body_words is None else body_words
    basis = body if len(body) >= 20 else words(title) + ["\x00"] + body
    return hashlib.sha1(" ".join(basis).encode()).hexdigest()
