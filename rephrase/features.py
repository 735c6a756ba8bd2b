"""Lexical features of a (previous query, next query) pair, in pure Python.

Per-text work (tokens, stems, question words, character trigrams) is done once per text and
cached by the detector; per-pair work is a handful of set operations. The features describe how
a re-ask looks next to a follow-up:

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
from dataclasses import dataclass

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
