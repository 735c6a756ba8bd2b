"""Rephrase detector: behaviour on pairs taken from the shipped real data, determinism,
batch/single agreement, and the evaluation guard that keeps the shipped threshold honest.

No Django DB. The MiniLM encoder packages are requirements, so nothing here is skipped.
"""

import pytest

from rephrase.evaluate import canard_pairs, evaluate, hint3_pairs
from rephrase.detector import DEFAULT_THRESHOLD, RephraseDetector, RephraseScore


# Taken verbatim from rephrase/data (asserted below), not hand-written.
REPHRASES = [
    # typo fix ("is" -> "his")
    ("Where did Augustus Pugin draw is inspiration ?", "where did Augustus Pugin draw his inspiration ?"),
    # reordering
    ("Did Lillie Langtry have affairs with anyone else besides the prince ?",
     "Did Lillie Langtry have affairs with anyone else , besides Prince ?"),
    # added missing context
    ("Where did Skelton perform ?", "Where did Red Skelton perform ?"),
    ("When did they disband?", "When did Zappa and the Mothers of Invention disband?"),
]
FOLLOWUPS = [  # consecutive questions of one CANARD dialog, same topic
    ("When was Kermit born?", "Where was Kermit born?"),
    ("What group disbanded?", "When did they disband?"),
]


@pytest.fixture(scope="module")
def canard():
    return {(a, b): y for a, b, y, _ in canard_pairs()}


def test_examples_come_from_real_data(canard):
    for p in REPHRASES:
        assert canard.get(p) == 1, p
    for p in FOLLOWUPS:
        assert canard.get(p) == 0, p


@pytest.mark.parametrize("semantic", [False, True])
def test_rephrases_above_and_followups_below_threshold(semantic):
    det = RephraseDetector(semantic=semantic)
    assert det.threshold == DEFAULT_THRESHOLD
    for s, p in zip(det.score_pairs(REPHRASES), REPHRASES):
        assert det.is_rephrase(s), (p, s)
    for s, p in zip(det.score_pairs(FOLLOWUPS), FOLLOWUPS):
        assert not det.is_rephrase(s), (p, s)
        assert s.score < DEFAULT_THRESHOLD


def test_lexical_stage_only_without_encoder():
    pairs = [(a, b) for a, b, _, _ in hint3_pairs()[:200]]
    for s in RephraseDetector(semantic=False).score_pairs(pairs):
        assert isinstance(s, RephraseScore)
        assert s.stage == "lexical" and s.semantic is None
        assert 0.0 <= s.score <= 1.0


def test_identical_and_empty_inputs():
    det = RephraseDetector(semantic=False)
    same, empty = det.score_pairs([("price of mattress?", "Price of mattress"), ("", "hello")])
    assert same.score == 1.0 and det.is_rephrase(same)
    assert empty.score == 0.0


def _sample_pairs():
    h = hint3_pairs()
    c = canard_pairs()
    return [(a, b) for a, b, _, _ in h[:150] + c[:150] + c[-150:]]


@pytest.mark.parametrize("semantic", [False, True])
def test_deterministic_and_batch_equals_single(semantic):
    pairs = _sample_pairs()
    first = RephraseDetector(semantic=semantic).score_pairs(pairs)
    second = RephraseDetector(semantic=semantic, batch_size=7).score_pairs(pairs)
    det = RephraseDetector(semantic=semantic)
    single = [det.score_pairs([p])[0] for p in pairs[:120]]
    for a, b in zip(first, second):
        assert a.stage == b.stage
        assert a.score == pytest.approx(b.score, abs=1e-4)
    for a, b in zip(first, single):
        assert a.stage == b.stage
        assert a.score == pytest.approx(b.score, abs=1e-4)
        # padding in a batch moves cosines by ~1e-7; decisions must not flip
        if abs(a.score - det.threshold) > 1e-4:
            assert det.is_rephrase(a) == det.is_rephrase(b)


def test_shipped_threshold_meets_targets_on_shipped_data():
    res = evaluate()
    canard, hint3 = res["sets"]["canard"], res["sets"]["hint3"]
    assert canard["precision"] >= 0.90 and canard["recall"] >= 0.90, canard
    assert hint3["precision"] >= 0.85 and hint3["recall"] >= 0.50, hint3
    assert len(hint3["sweep"]) >= 5


def _eval_sentences(n=300):
    texts = [t for a, b, _, _ in hint3_pairs()[:400:4] + canard_pairs()[::40] for t in (a, b)]
    return list(dict.fromkeys(texts))[:n]


def test_onnx_encoder_matches_sentence_transformers_on_real_sentences():
    """The fast runtime (onnxruntime, built from the shipped weights) == the reference pipeline."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from rephrase.encoder import model_dir
    from rephrase.detector import MAX_SEQ_TOKENS, load_encoder

    texts = _eval_sentences()
    assert len(texts) >= 250
    ref_model = SentenceTransformer(str(model_dir()), device="cpu")
    ref_model.max_seq_length = MAX_SEQ_TOKENS
    ref = ref_model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    fast = load_encoder().encode(texts, batch_size=16)
    assert fast.shape == ref.shape and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float((fast * ref).sum(axis=1).min()) >= 0.9999
    # order/batch independent: one at a time gives the same vectors
    single = np.vstack([load_encoder().encode([t]) for t in texts[:20]])
    assert float((single * fast[:20]).sum(axis=1).min()) >= 0.99999


def test_semantic_stage_runs_without_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from rephrase.detector import RephraseDetector, load_encoder; load_encoder(); "
            "RephraseDetector().score_pairs([('where is my parcel', 'my parcel has not arrived')]); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, check=True)


def test_embedding_cache_across_calls_is_bounded_and_consistent(monkeypatch):
    import rephrase.detector as sim

    monkeypatch.setattr(sim, "EMBED_CACHE_SIZE", 50)
    pairs = _sample_pairs()
    det = RephraseDetector()
    first = det.score_pairs(pairs)
    assert 0 < len(det._emb) <= 50
    again = det.score_pairs(pairs)  # partly from the cache
    for a, b in zip(first, again):
        assert a.stage == b.stage and a.score == pytest.approx(b.score, abs=1e-4)
