"""WebShop's search engine, re-implemented: Lucene's BM25 over Anserini's default English analyzer.

WebShop indexes each product's ``contents`` with pyserini 0.17.0 (Anserini 0.14.3, Lucene 8.11) and
searches with ``LuceneSearcher(index).search(keywords, k=50)``. Every step of that is reproduced here:

- **Analyzer** (Anserini's ``DefaultEnglishAnalyzer``): Lucene's ``StandardTokenizer`` (the Unicode word
  break rules of UAX#29 as Lucene's JFlex grammar writes them, with its token types: letters and
  digits, Southeast Asian runs, single ideographs and hiragana, emoji; at most 255 characters a
  token), ``EnglishPossessiveFilter`` (a trailing 's / ’s / ＇s), ``LowerCaseFilter`` (per code point,
  as Java's ``Character.toLowerCase``), ``StopFilter`` with Lucene's 33 English stop words, and
  ``PorterStemFilter`` (Lucene's ``PorterStemmer``, ported below; it is Porter's release 3, which
  differs from Snowball's "porter" in a few rules and does not stem words under 3 characters).
- **Query**: Anserini's ``BagOfWordsQueryGenerator``: the query's analysed terms, each distinct term
  once with a boost equal to its count, as SHOULD clauses of a BooleanQuery (a document's score is the
  sum over matched terms).
- **Scoring**: Lucene 8's ``BM25Similarity(k1=0.9, b=0.4)`` in single precision exactly as Lucene
  computes it: idf = ln(1 + (N - n + 0.5) / (n + 0.5)); a document's length (its token count) stored
  in one byte (``SmallFloat.intToByte4``: exact below 24, then 4 significant bits) and decoded for the
  length normalisation; average length = total token count / number of documents;
  score = w - w / (1 + tf * 1 / (k1 * (1 - b + b * len / avgdl))) with w = boost * idf.
- **Order**: Anserini sorts by score, then by the document's id (``BREAK_SCORE_TIES_BY_DOCID``),
  and returns at most 50 documents, only documents that match a query term.

The tokenizer's character classes (Unicode 9.0 word-break properties and Emoji 11.0 data, as Lucene
8's grammar has them) were measured on Lucene itself for every code point (``lucene_chars.py``).
``tools/check_webshop_search.py`` compares the whole search with Lucene; on 9,190 queries (goal
instructions, goal queries, titles, attributes, edge cases) every top-50 list and every score is
Lucene's.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter

import numpy as np

from envs.webshop.lucene_chars import CLASSES

SEARCH_RETURN_N = 50  # WebShop returns at most 50 products per query
K1, B = 0.9, 0.4  # pyserini's BM25 defaults
MAX_TOKEN_LENGTH = 255  # StandardTokenizer's default (its scanner's buffer holds 255 characters)

# Lucene's English stop word set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)

# --- StandardTokenizer: Lucene 8's StandardTokenizerImpl.jflex, rule by rule ---------------------------
#
# Each character is first mapped to a one-letter code of its class in Lucene's grammar (the classes,
# measured on Lucene itself, are in lucene_chars.py); the grammar's rules then run as a small regular
# expression over the codes, and the spans of its matches are the tokens.
#
#   L letter (ALetter)   H Hebrew_Letter   N digit (Numeric)   9 ASCII digit (Numeric, keycap base)
#   K Katakana   I ideograph or hiragana (one token each)   S Southeast Asian (Complex_Context) runs
#   M MidLetter   U MidNum   D MidNumLet   Q Single_Quote (')   W Double_Quote (")   E ExtendNumLet
#   F Format/Extend   T Southeast Asian and Extend   Z ZWJ   V U+FE0F   X U+FE0E   C U+20E3 (keycap)
#   G tag   Y cancel tag   J emoji   B emoji that takes a skin tone   O skin tone   R regional indicator
#   A letter that is an emoji character too ("ℹ", "Ⓜ")   P "#" or "*" (keycap bases)   - anything else


def _ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split():
        first, _, last = part.partition("-")
        out.append((int(first, 16), int(last or first, 16)))
    return out


_CLASS_RANGES = {name: _ranges("".join(spec)) for name, spec in CLASSES.items()}
_CLASS_STARTS = {name: [r[0] for r in ranges] for name, ranges in _CLASS_RANGES.items()}
_SPECIAL = {0x200D: "Z", 0xFE0F: "V", 0xFE0E: "X", 0x20E3: "C", 0xE007F: "Y", 0x23: "P", 0x2A: "P", 0x22: "W"}
_SPECIAL.update({c: "9" for c in range(0x30, 0x3A)})
_SPECIAL.update({c: "G" for c in range(0xE0020, 0xE007F)})
_SPECIAL.update({c: "O" for c in range(0x1F3FB, 0x1F400)})
_HEBREW = _ranges("5D0-5EA 5F0-5F2 FB1D FB1F-FB28 FB2A-FB36 FB38-FB3C FB3E FB40-FB41 FB43-FB44 FB46-FB4F")


def _in(name: str, cp: int) -> bool:
    i = bisect.bisect_right(_CLASS_STARTS[name], cp) - 1
    return i >= 0 and cp <= _CLASS_RANGES[name][i][1]


def _class_code(cp: int) -> str:
    if cp in _SPECIAL:
        return _SPECIAL[cp]
    for name, code in (("MODIFIER_BASE", "B"), ("EMOJI", "J"), ("REGIONAL", "R")):
        if _in(name, cp):
            return code
    if _in("SEA", cp):
        return "T" if _in("FEZ", cp) else "S"
    if _in("LETTER", cp):
        if _in("LETTER_EMOJI", cp):
            return "A"
        return "H" if any(a <= cp <= b for a, b in _HEBREW) else "L"
    for name, code in (("FEZ", "F"), ("NUMERIC", "N"), ("KATAKANA", "K"), ("SINGLE", "I"),
                       ("MID_LETTER", "M"), ("MID_NUM", "U"), ("MID_NUM_LET", "D"), ("SINGLE_QUOTE", "Q"),
                       ("EXTEND_NUM_LET", "E")):  # fmt: skip
        if _in(name, cp):
            return code
    return "-"


class _ClassCodes(dict):
    """str.translate table: code point -> class code, filled on first sight."""

    def __missing__(self, cp: int) -> str:
        code = self[cp] = _class_code(cp)
        return code


_CODES = _ClassCodes()

_FEZ = "[FTZVXCGY]*"  # UAX#29 WB4: X (Extend | Format | ZWJ)* -> X
_ENL = f"(?:E{_FEZ})"
_AHLETTER, _HEBREW_LETTER, _NUMERIC, _KATAKANA = (f"[LHA]{_FEZ}", f"H{_FEZ}", f"[N9]{_FEZ}", f"K{_FEZ}")
_MID_LETTER, _MID_NUMERIC = f"[MDQ]{_FEZ}", f"[UDQ]{_FEZ}"
_INNER_UNIT = (
    f"(?:{_HEBREW_LETTER}(?:Q{_FEZ}|W{_FEZ}{_HEBREW_LETTER})"
    f"|{_NUMERIC}(?:(?:{_ENL}*|{_MID_NUMERIC}){_NUMERIC})*"
    f"|{_AHLETTER}(?:(?:{_ENL}*|{_MID_LETTER}){_AHLETTER})*)"
)
_INNER = f"(?:{_KATAKANA}(?:{_ENL}*{_KATAKANA})*|{_INNER_UNIT}+)"
# The word rule (it covers the numeric, hangul and katakana rules, which differ only in token type).
_WORD = f"{_ENL}*{_INNER}(?:{_ENL}+{_INNER})*{_ENL}*"
# The emoji rule. Its Extend/Format/ZWJ runs leave out a ZWJ that joins the next emoji, so that the first
# match is the longest, as in JFlex (written as in the grammar, the run would take that ZWJ and end there).
_EXT = "(?:[FTCGY]|Z(?!Z*[JBA]|O))*"  # ExtFmtZwjSansPresSel
_EMOJI_ONE = f"(?:(?:Z*B{_EXT})?O{_EXT}|Z*[JBA]{_EXT}V?)"  # a skin-toned emoji first: the longer one
_EMOJI = f"{_EMOJI_ONE}(?:G+Y|(?:Z{_EMOJI_ONE})*)|[9P][FTZCGY]*V?C[FTZCGY]*|R{_FEZ}R{_FEZ}"
_TOKEN = re.compile(f"(?P<word>{_WORD})|(?:[ST]{_FEZ})+|I{_FEZ}|(?P<emoji>{_EMOJI})")
# Where a token starts, JFlex takes the longest match of all its rules; a regular expression takes the
# first. As written, they differ only where a Hebrew letter's quote could go on (Hebrew_Letter ×
# Single_Quote; Hebrew_Letter Double_Quote × Hebrew_Letter), and where a letter is an emoji too ("A").
_EMOJI_RE = re.compile(_EMOJI)
_HEBREW_QUOTE = re.compile(f"H{_FEZ}(?:Q{_FEZ}|W{_FEZ}{_HEBREW_LETTER})")
_WORD_GOES_ON = re.compile(f"{_INNER_UNIT}*(?:{_ENL}+{_INNER})*{_ENL}*")
_ASCII_TOKEN = re.compile(
    r"_*(?:[0-9](?:_*[0-9]|[,.;'][0-9])*|[A-Za-z](?:_*[A-Za-z]|[:.'][A-Za-z])*)+"
    r"(?:_+(?:[0-9](?:_*[0-9]|[,.;'][0-9])*|[A-Za-z](?:_*[A-Za-z]|[:.'][A-Za-z])*)+)*_*"
)  # the word rule on ASCII text: letters, digits, "_" (ExtendNumLet), ":" (MidLetter), "," ";" (MidNum),
#    "." (MidNumLet), "'" (Single_Quote); no other ASCII character makes or joins tokens


def _token_end(codes: str, m: re.Match, limit: int) -> int:
    """The end of JFlex's longest match at ``m.start()``, given the regular expression's match ``m``."""
    start, end = m.span()
    if m.lastgroup != "word":
        return end
    while end < limit and codes[end] in "QW":  # a quote after a Hebrew letter: the word may go on
        h = codes.rfind("H", start, end)
        if h < 0 or codes[h + 1 : end].strip("FTZVXCGY"):  # the last letter is not Hebrew
            break
        if codes[start:h].rstrip("FTZVXCGY")[-1:] in ("M", "D", "Q"):  # it ends "letter . letter"
            break
        quote = _HEBREW_QUOTE.match(codes, h, limit)
        if quote is None or quote.end() <= end:
            break
        end = _WORD_GOES_ON.match(codes, quote.end(), limit).end()
    if codes[start] == "A":  # a letter that is an emoji character too: the longer of the two
        emoji = _EMOJI_RE.match(codes, start, limit)
        end = max(end, emoji.end() if emoji else end)
    return end


def standard_tokens(text: str) -> list[str]:
    """The tokens of Lucene's StandardTokenizer (default maximum token length, 255), not lower-cased."""
    if text.isascii():  # the common case: no emoji, no other script
        tokens = _ASCII_TOKEN.findall(text)
        if all(len(t) <= MAX_TOKEN_LENGTH for t in tokens):
            return tokens
    codes = text.translate(_CODES)
    out, pos, n = [], 0, len(codes)
    while True:
        for m in _TOKEN.finditer(codes, pos):
            start = m.start()
            end = _token_end(codes, m, n)
            if end - start > MAX_TOKEN_LENGTH:  # the scanner sees 255 characters at most: rescan them
                window = _TOKEN.match(codes, start, start + MAX_TOKEN_LENGTH)
                if window is None:  # no token in view: the scanner skips a character
                    pos = start + 1
                    break
                end = _token_end(codes, window, start + MAX_TOKEN_LENGTH)
            out.append(text[start:end])
            if end != m.end():
                pos = end
                break
        else:
            return out


# --- Lucene's PorterStemmer (Porter's release 3, as in Lucene's org.apache.lucene.analysis.en) ---------

_STEP3 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP4 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP5 = {
    "a": ("al",), "c": ("ance", "ence"), "e": ("er",), "i": ("ic",), "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"), "s": ("ism",), "t": ("ate", "iti"), "u": ("ous",), "v": ("ive",),
    "z": ("ize",),
}  # fmt: skip


class _Porter:
    """A port of Lucene's PorterStemmer: ``b`` is the word, b[0..k] the current stem, ``j`` the end of
    the stem before a suffix that ``ends`` found (it works on UTF-16 units, like Java's char[])."""

    __slots__ = ("b", "k", "j")

    def __init__(self, word: str):
        self.b, self.k, self.j = word, len(word) - 1, 0

    def cons(self, i: int) -> bool:
        c = self.b[i]
        if c in "aeiou":
            return False
        if c == "y":
            return i == 0 or not self.cons(i - 1)
        return True

    def m(self) -> int:
        """The number of consonant-vowel sequences in b[0..j]."""
        n, i, j = 0, 0, self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowelinstem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def doublec(self, j: int) -> bool:
        return j >= 1 and self.b[j] == self.b[j - 1] and self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        if not self.b.endswith(s, 0, self.k + 1):
            return False
        self.j = self.k - len(s)
        return True

    def setto(self, s: str) -> None:
        self.b = self.b[: self.j + 1] + s + self.b[self.j + 1 + len(s) :]
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def step1(self) -> None:
        if self.b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.setto("i")
            elif self.b[self.k - 1] != "s":
                self.k -= 1
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowelinstem():
            self.k = self.j
            if self.ends("at"):
                self.setto("ate")
            elif self.ends("bl"):
                self.setto("ble")
            elif self.ends("iz"):
                self.setto("ize")
            elif self.doublec(self.k):
                if self.b[self.k] not in "lsz":
                    self.k -= 1
            elif self.m() == 1 and self.cvc(self.k):
                self.setto("e")

    def step2(self) -> None:
        if self.ends("y") and self.vowelinstem():
            self.b = self.b[: self.k] + "i" + self.b[self.k + 1 :]

    def _replace_first(self, rules) -> None:
        for suffix, repl in rules:
            if self.ends(suffix):
                self.r(repl)
                return

    def step3(self) -> None:
        if self.k != 0:
            self._replace_first(_STEP3.get(self.b[self.k - 1], ()))

    def step4(self) -> None:
        self._replace_first(_STEP4.get(self.b[self.k], ()))

    def step5(self) -> None:
        if self.k == 0:
            return
        c = self.b[self.k - 1]
        if c == "o":
            found = (self.ends("ion") and self.j >= 0 and self.b[self.j] in "st") or self.ends("ou")
        else:
            found = any(self.ends(s) for s in _STEP5.get(c, ()))
        if found and self.m() > 1:
            self.k = self.j

    def step6(self) -> None:
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.doublec(self.k) and self.m() > 1:
            self.k -= 1

    def stem(self) -> str:
        if self.k > 1:
            self.step1()
            self.step2()
            self.step3()
            self.step4()
            self.step5()
            self.step6()
        return self.b[: self.k + 1]


def porter_stem(word: str) -> str:
    """Lucene's PorterStemmer.stem (words of fewer than 3 UTF-16 units are left as they are)."""
    if word.isascii() or max(map(ord, word)) < 0x10000:
        return _Porter(word).stem()
    units = word.encode("utf-16-le", "surrogatepass")
    utf16 = "".join(chr(int.from_bytes(units[i : i + 2], "little")) for i in range(0, len(units), 2))
    return _Porter(utf16).stem().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


# --- The analyzer ---------------------------------------------------------------------------------------

_POSSESSIVE_QUOTES = ("'", "\u2019", "\uff07")


def _lower(token: str) -> str:
    """Java's Character.toLowerCase per code point (no final sigma, no 'İ' -> 'i̇' expansion)."""
    if token.isascii():
        return token.lower()
    return "".join("i" if c == "\u0130" else c.lower() if len(c.lower()) == 1 else c for c in token)


def analyze_token(token: str) -> str | None:
    """The term Lucene indexes for one StandardTokenizer token (None: a stop word): EnglishPossessiveFilter,
    LowerCaseFilter, StopFilter (Lucene's English stop words), PorterStemFilter."""
    if len(token) >= 2 and token[-2] in _POSSESSIVE_QUOTES and token[-1] in "sS":
        token = token[:-2]
    word = _lower(token)
    return None if word in STOP_WORDS else porter_stem(word)


class Analyzer(dict):
    """Anserini's DefaultEnglishAnalyzer, with each token's term memoised (a dict: token -> term)."""

    MAX_MEMO = 500_000  # tokens; the memo is emptied beyond this (agents can type anything)

    def __missing__(self, token: str) -> str | None:
        if len(self) >= self.MAX_MEMO:
            self.clear()
        term = self[token] = analyze_token(token)
        return term

    def __call__(self, text: str) -> list[str]:
        return [t for t in map(self.__getitem__, standard_tokens(text)) if t is not None]


_ANALYZER = Analyzer()


def tokenize(text: str) -> list[str]:
    """The terms Lucene indexes or searches for ``text`` (Anserini's default English analyzer)."""
    return _ANALYZER(text)


# --- Lucene 8's BM25 with SmallFloat length norms --------------------------------------------------------

_NUM_FREE_VALUES = 24  # 255 - SmallFloat.longToInt4(Integer.MAX_VALUE)


def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i  # subnormal
    shift = num_bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def int_to_byte4(i: int) -> int:
    """SmallFloat.intToByte4: a document length as Lucene stores it (one byte, as 0..255)."""
    if i < _NUM_FREE_VALUES:
        return i
    return _NUM_FREE_VALUES + _long_to_int4(i - _NUM_FREE_VALUES)


def byte4_to_int(b: int) -> int:
    """SmallFloat.byte4ToInt: the length Lucene's BM25 uses for a stored norm byte."""
    if b < _NUM_FREE_VALUES:
        return b
    return _NUM_FREE_VALUES + _int4_to_long(b - _NUM_FREE_VALUES)


_LENGTH_TABLE = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)


def _f32(x) -> np.float32:
    return np.float32(x)


class SearchIndex:
    """An in-memory inverted index over (id, text) documents, scored as Lucene 8's BM25Similarity."""

    def __init__(self, ids: list[str], texts: list[str], k1: float = K1, b: float = B):
        if len(ids) != len(texts) or not ids:
            raise ValueError("the search index needs one text per id, and at least one document")
        self.ids = list(ids)
        vocab: dict[str, int] = {}
        post_term, post_doc, post_tf = [], [], []  # one entry per (term, document)
        lengths = []
        for d, text in enumerate(texts):
            terms = tokenize(text)
            lengths.append(len(terms))
            for t, tf in Counter(terms).items():
                post_term.append(vocab.setdefault(t, len(vocab)))
                post_doc.append(d)
                post_tf.append(tf)
        total = sum(lengths)  # Lucene's sumTotalTermFreq
        self._doc_count = doc_count = sum(1 for n in lengths if n)  # docCount: documents with a term
        norms = np.array([int_to_byte4(n) for n in lengths])  # the norm Lucene stores: the length in a byte
        avgdl = _f32(total / doc_count) if doc_count else _f32(1)
        # BM25Similarity.scorer: cache[i] = 1 / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl)), in floats
        k1_, b_, one = _f32(k1), _f32(b), _f32(1)
        cache = one / (k1_ * ((one - b_) + b_ * _LENGTH_TABLE / avgdl))
        self._inv_norm = cache[norms]  # per document
        # Postings grouped by term (in document order), each with its score for a query term of boost 1.
        order = np.argsort(np.array(post_term, dtype=np.int64), kind="stable")
        self._docs = np.array(post_doc, dtype=np.int64)[order]
        self._tf = np.array(post_tf, dtype=np.float32)[order]
        doc_freq = np.bincount(np.array(post_term, dtype=np.int64), minlength=len(vocab))
        ends = np.cumsum(doc_freq)
        # BM25Similarity.idf: (float) Math.log(1 + (docCount - docFreq + 0.5) / (docFreq + 0.5))
        idf = [_f32(math.log(1 + (doc_count - n + 0.5) / (n + 0.5))) for n in doc_freq.tolist()]
        self._terms = {
            t: (int(ends[i] - doc_freq[i]), int(ends[i]), idf[i]) for t, i in vocab.items()
        }  # term -> (first posting, end, idf)
        weights = np.array(idf, dtype=np.float32)[np.repeat(np.arange(len(vocab)), doc_freq)]
        self._score1 = self._term_scores(weights, self._tf, self._docs)
        # Ties are broken by the id (Anserini sorts by score, then by the "id" field's bytes).
        by_id = sorted(range(len(ids)), key=lambda d: self.ids[d].encode("utf-8"))
        self._id_rank = np.empty(len(ids), dtype=np.int64)
        self._id_rank[by_id] = np.arange(len(ids))

    def _term_scores(self, weight, tf: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """BM25Scorer.score for each document: weight - weight / (1 + freq * cache[norm]), in floats."""
        return weight - weight / (_f32(1) + tf * self._inv_norm[docs])

    def _scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(document indices, float32 scores) of the documents that match ``query``, by index."""
        counts = Counter(tokenize(query))
        total = np.zeros(len(self.ids), dtype=np.float64)  # BooleanQuery sums its clauses in doubles
        for term, count in counts.items():
            if term not in self._terms:
                continue
            start, end, idf = self._terms[term]
            docs = self._docs[start:end]
            if count == 1:
                scores = self._score1[start:end]
            else:  # BagOfWordsQueryGenerator: BoostQuery(TermQuery, count); weight = boost * idf
                scores = self._term_scores(_f32(count) * idf, self._tf[start:end], docs)
            total[docs] += scores
        idx = np.flatnonzero(total)  # every matching document has a positive score
        return idx, total[idx].astype(np.float32)

    def scores(self, query: str) -> dict[int, float]:
        """Lucene's score (a float) of every document that matches ``query``, by document index."""
        idx, sc = self._scores(query)
        return dict(zip(idx.tolist(), sc.tolist(), strict=True))

    def ranked(self, query: str, k: int | None = None) -> list[tuple[int, float]]:
        """(document index, score) of the ``k`` best matching documents (all: None), in Anserini's order."""
        idx, sc = self._scores(query)
        order = np.lexsort((self._id_rank[idx], -sc))[:k]
        return list(zip(idx[order].tolist(), sc[order].tolist(), strict=True))

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """Ids of the ``k`` best documents for ``query``, best first, as WebShop's engine returns them."""
        return [self.ids[d] for d, _ in self.ranked(query, k)]
