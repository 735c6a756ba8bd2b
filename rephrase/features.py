"""Lexical features of a (previous query, next query) pair, in pure Python.

Per-text work (tokens, stems, question words, character trigrams) is done once per text and
kept in a ``TextTable`` (one row of small integers per text, plus the sets pairs intersect);
``pair_matrix`` computes the features of many pairs at once: three set intersections per pair in
Python, everything else numpy over the batch. ``pair_features`` is the same for one pair, written
plainly (training uses it; a test holds the two to the same bits). The features describe how a
re-ask looks next to a follow-up:

* a re-ask keeps the previous query's content words (CANARD rewrites spell out the context, they
  do not drop the question) — ``containment``, ``missing``, ``added``, ``added_names``;
* a follow-up leans on the previous turn (a pronoun, "other/else/also", a new question word) or
  changes a number ("in 1929" -> "in 1930") — ``wh_switch``, ``opener_switch``, ``followup_marker``,
  ``number_change``;
* a paraphrase in other words shares little vocabulary: that is what the sentence encoder's
  cosine adds (the semantic model only).
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+")
_STOP = frozenset(
    "a an the of to in on for and or is are was were be been being do does did what which who "
    "whom whose when where why how that this these those it its i me my you your he she him his "
    "her they them their we us our can could would should will shall may might must have has had "
    "with at by from as about into than then so if not no any some there here just also very much "
    "many more most other else s t".split()
)
_WH = frozenset("what when where who whom whose why which how".split())
# Words that make a query lean on the previous turn (anaphora) ...
_PRONOUNS = frozenset(
    "he she him his her hers they them their theirs it its this that these those there".split()
)
# ... or announce a different (next/additional) piece of information.
_FOLLOWUP = frozenset(
    "other others else another also besides additional second next then after afterwards later "
    "more".split()
)
# Words a question opens with; a different opener asks a different kind of question.
_OPENERS = _WH | frozenset("is are was were do does did can could will would should has have had".split())
_SUFFIXES = ("ing", "edly", "ed", "ies", "es", "s", "ly")

FEATURES = ("equal", "containment", "reverse_containment", "jaccard", "missing", "added", "added_names",
            "wh_switch", "opener_switch", "followup_marker", "prev_pronoun", "next_pronoun", "pronoun_resolved",
            "char_jaccard", "length_ratio", "prev_length", "number_change")


def _stem(w: str) -> str:
    # Crude suffix stripping: enough to match "disband"/"disbanded", "tour"/"tours".
    for suf in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


@dataclass(frozen=True, slots=True)
class TextFeatures:
    norm: str
    tokens: frozenset
    content: frozenset
    wh: frozenset
    pron: bool
    followup: frozenset
    opener: str
    n_tokens: int
    names: frozenset  # lower-cased words written with a capital, not first in the query
    numbers: frozenset
    trigrams: frozenset


def text_features(text: str) -> TextFeatures:
    raw = _TOKEN.findall(text)
    toks = [w.lower() for w in raw]
    joined = " " + " ".join(toks) + " "
    return TextFeatures(
        norm=joined.strip(),
        tokens=frozenset(toks),
        content=frozenset(_stem(w) for w in toks if w not in _STOP),
        wh=frozenset(w for w in toks if w in _WH),
        pron=any(w in _PRONOUNS for w in toks),
        followup=frozenset(w for w in toks if w in _FOLLOWUP),
        opener=toks[0] if toks and toks[0] in _OPENERS else "",
        n_tokens=len(toks),
        names=frozenset(w.lower() for w in raw[1:] if w[:1].isupper()),
        numbers=frozenset(_NUMBER.findall(text)),
        trigrams=frozenset(joined[i: i + 3] for i in range(len(joined) - 2)),
    )


def pair_features(a: TextFeatures, b: TextFeatures) -> list[float]:
    """The FEATURES of ``b`` read as the query after ``a``, in that order."""
    ca, cb = a.content, b.content
    common = len(ca & cb)
    union = len(ca) + len(cb) - common
    tg = len(a.trigrams & b.trigrams)
    tu = len(a.trigrams) + len(b.trigrams) - tg
    na, nb = a.numbers, b.numbers
    return [
        1.0 if a.norm == b.norm else 0.0,
        common / len(ca) if ca else 0.0,
        common / len(cb) if cb else 0.0,
        common / union if union else 0.0,
        float(min(len(ca) - common, 5)),
        float(min(len(cb) - common, 8)),
        float(min(len(b.names - a.tokens), 4)),
        1.0 if (a.wh and b.wh and not (a.wh & b.wh)) else 0.0,
        1.0 if (a.opener and b.opener and a.opener != b.opener) else 0.0,
        1.0 if (b.followup - a.followup) else 0.0,
        1.0 if a.pron else 0.0,
        1.0 if b.pron else 0.0,
        1.0 if (a.pron and not b.pron) else 0.0,
        tg / tu if tu else 0.0,
        math.log((b.n_tokens + 1) / (a.n_tokens + 1)),
        min(a.n_tokens, 30) / 30,
        1.0 if ((na - nb) or (na and (nb - na))) else 0.0,
    ]


# --- many pairs at once -------------------------------------------------------------------------

_WH_BIT = {w: 1 << i for i, w in enumerate(sorted(_WH))}
_FOLLOWUP_BIT = {w: 1 << i for i, w in enumerate(sorted(_FOLLOWUP))}
_OPENER_ID = {w: i + 1 for i, w in enumerate(sorted(_OPENERS))}  # 0: none
# Columns of TextTable.num (int64)
N_CONTENT, N_TRIGRAMS, N_TOKENS, PRON, WH, FOLLOWUP, OPENER, HAS_NUMBERS, NORM, BLANK, N_NAMES = range(11)
_LOG_N = 128  # length_ratio from a table of math.log (numpy's log may differ in the last bit) up to this many tokens
_LOG_RATIO = np.array([[math.log((b + 1) / (a + 1)) for b in range(_LOG_N)] for a in range(_LOG_N)])


@dataclass(frozen=True, slots=True)
class TableView:
    """The table as one caller sees it: rows ``0..len(num)-1`` stay valid whatever others add or clear."""
    num: np.ndarray
    content: list
    trigrams: list
    names: list
    tokens: list
    numbers: list


class TextTable:
    """Per-text features of the texts seen so far, ids in order of arrival; cleared when full.

    ``lookup(texts)`` returns each text's id and a view valid for those ids. Thread-safe: a clear
    makes new containers, so a view taken before it stays whole.
    """

    def __init__(self, cap: int):
        self.cap = cap
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.ids: dict = {}
        self.norms: dict[str, int] = {}
        # One object per distinct word / trigram: sets of different texts then share their elements, and
        # an intersection matches them by pointer (no string compare, fewer cache misses): ~4x faster.
        self.words: dict[str, str] = {}
        self.content: list = []
        self.trigrams: list = []
        self.names: list = []
        self.tokens: list = []
        self.numbers: list = []
        self.num = np.zeros((1024, 11), dtype=np.int64)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _add(self, text) -> int:
        f = text_features(text or "")
        k = self.size
        if k == len(self.num):
            grown = np.zeros((2 * k, 11), dtype=np.int64)
            grown[:k] = self.num
            self.num = grown
        wh = fu = 0
        for w in f.wh:
            wh |= _WH_BIT[w]
        for w in f.followup:
            fu |= _FOLLOWUP_BIT[w]
        self.num[k] = (len(f.content), len(f.trigrams), f.n_tokens, f.pron, wh, fu, _OPENER_ID.get(f.opener, 0),
                       bool(f.numbers), self.norms.setdefault(f.norm, len(self.norms)),
                       not (text and text.strip()), len(f.names))
        same = self.words.setdefault
        self.content.append(frozenset([same(w, w) for w in f.content]))
        self.trigrams.append(frozenset([same(w, w) for w in f.trigrams]))
        self.names.append(frozenset([same(w, w) for w in f.names]))
        self.tokens.append(frozenset([same(w, w) for w in f.tokens]))
        self.numbers.append(f.numbers)
        self.ids[text] = k
        self.size = k + 1
        return k

    def lookup(self, texts) -> tuple[np.ndarray, TableView]:
        with self._lock:
            if self.size >= self.cap:
                self._reset()
            found = list(map(self.ids.get, texts))
            if None in found:
                for i, k in enumerate(found):
                    if k is None:
                        t = texts[i]
                        k = self.ids.get(t)
                        found[i] = self._add(t) if k is None else k
            view = TableView(self.num[:self.size], self.content, self.trigrams, self.names, self.tokens,
                             self.numbers)
        return np.array(found, dtype=np.intp), view


def _sizes(op, sets: list, a: list, b: list, other: list | None = None) -> np.ndarray:
    """``len(op(sets[a[i]], other[b[i]]))`` for each i (``other`` defaults to ``sets``), looped in C."""
    return np.fromiter(map(len, map(op, map(sets.__getitem__, a), map((sets if other is None else other).__getitem__, b))),
                       dtype=np.int64, count=len(a))


def pair_matrix(t: TableView, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The FEATURES (columns) of the pairs (text ``A[i]``, then text ``B[i]``), bit for bit as ``pair_features``."""
    n = len(A)
    X = np.zeros((n, len(FEATURES)))
    if not n:
        return X
    na, nb = t.num[A], t.num[B]
    al, bl = A.tolist(), B.tolist()
    common = _sizes(frozenset.__and__, t.content, al, bl)
    tg = _sizes(frozenset.__and__, t.trigrams, al, bl)
    ca, cb = na[:, N_CONTENT], nb[:, N_CONTENT]
    union = ca + cb - common
    tu = na[:, N_TRIGRAMS] + nb[:, N_TRIGRAMS] - tg
    np.divide(common, ca, out=X[:, 1], where=ca > 0)
    np.divide(common, cb, out=X[:, 2], where=cb > 0)
    np.divide(common, union, out=X[:, 3], where=union > 0)
    X[:, 0] = na[:, NORM] == nb[:, NORM]
    X[:, 4] = np.minimum(ca - common, 5)
    X[:, 5] = np.minimum(cb - common, 8)
    named = np.flatnonzero(nb[:, N_NAMES] > 0)  # names of the next query the previous one lacks
    if len(named):
        X[named, 6] = np.minimum(_sizes(frozenset.__sub__, t.names, B[named].tolist(), A[named].tolist(),
                                        other=t.tokens), 4)
    wa, wb = na[:, WH], nb[:, WH]
    X[:, 7] = (wa != 0) & (wb != 0) & ((wa & wb) == 0)
    oa, ob = na[:, OPENER], nb[:, OPENER]
    X[:, 8] = (oa != 0) & (ob != 0) & (oa != ob)
    X[:, 9] = (nb[:, FOLLOWUP] & ~na[:, FOLLOWUP]) != 0
    pa, pb = na[:, PRON] != 0, nb[:, PRON] != 0
    X[:, 10] = pa
    X[:, 11] = pb
    X[:, 12] = pa & ~pb
    np.divide(tg, tu, out=X[:, 13], where=tu > 0)
    ka, kb = na[:, N_TOKENS], nb[:, N_TOKENS]
    small = (ka < _LOG_N) & (kb < _LOG_N)
    X[:, 14] = _LOG_RATIO[np.where(small, ka, 0), np.where(small, kb, 0)]
    for i in np.flatnonzero(~small).tolist():
        X[i, 14] = math.log((int(kb[i]) + 1) / (int(ka[i]) + 1))
    X[:, 15] = np.minimum(ka, 30) / 30
    numbered = np.flatnonzero(na[:, HAS_NUMBERS] != 0)
    for i, a, b in zip(numbered.tolist(), A[numbered].tolist(), B[numbered].tolist()):
        sa, sb = t.numbers[a], t.numbers[b]
        X[i, 16] = 1.0 if ((sa - sb) or (sa and (sb - sa))) else 0.0
    return X
