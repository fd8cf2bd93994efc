"""Text features shared by dedup and clustering: tokens, shingles, hashes and term weights."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.U)

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
    """.split()
)


def fold(text: str) -> str:
    """Lower-case, with compatibility characters folded (ﬁ -> fi, full-width digits -> digits)."""
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> list[str]:
    """Every word of ``text``, lower-cased, in order (for shingles and hashes)."""
    return [w.replace("’", "'") for w in _WORD.findall(fold(text))]


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
    """Content words of ``text``: stop words and one-letter tokens dropped, lightly stemmed."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def shingles(tokens: list[str], size: int) -> set[bytes]:
    """Word ``size``-grams as bytes (the whole text as one shingle when it is shorter)."""
    if len(tokens) < size:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


def content_hash(title: str, text: str) -> str:
    """A hash of the normalised body (the title when there is no body): equal for byte-different copies."""
    body = words(text)
    basis = body if len(body) >= 20 else words(title) + ["\x00"] + body
    return hashlib.sha1(" ".join(basis).encode()).hexdigest()
