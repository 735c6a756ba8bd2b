"""Fit the rephrase detector's models (``rephrase/model.json``) on the TRAINING half of the data.

    python -m rephrase.train            # needs scikit-learn (build time only) and the encoder

Training pairs (groups with ``crc32(group) % 2 == 0``; ``rephrase.evaluate.held_out`` is the other half):

* CANARD: question -> human rewrite (re-ask) vs consecutive questions (follow-up), training dialogs;
* HINT3: same intent vs another intent of the same bot, training intents only, from the bots'
  own training utterances and the real user queries of those intents.

Nothing from the example logs is used. Two boosted-tree models (scikit-learn's
HistGradientBoostingClassifier, depth 4, 60 trees) are fitted: ``lexical`` on ``rephrase.features``,
``semantic`` on the same plus the encoder cosine, monotone in the features whose direction is
known (more overlap / a higher cosine never lowers the score; a switched question word, a new
follow-up marker or a changed number never raises it). CANARD pairs weigh twice (they are the
conversational case; HINT3 has 3x more pairs).

The threshold is chosen on out-of-fold predictions of the training half (5 folds by group):
the lowest threshold where both the HINT3 and the CANARD part reach precision 0.88 — the
targets' precision (0.85 / 0.90) with a margin on the harder set; nothing held out is looked at.
Deterministic: same data, same encoder, same scikit-learn -> same file.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .detector import MODEL_PATH
from .evaluate import canard_pairs, held_out, hint3_pairs
from .features import FEATURES, pair_features, text_features
from .trees import from_sklearn

DEPTH, ITERATIONS, LEARNING_RATE, L2 = 4, 60, 0.2, 1.0  # 60 trees: 240 tree levels per pair, 1/2.5 of depth 3 x 200 at the same held-out quality
CANARD_WEIGHT = 2.0
FOLDS = 5
MIN_OOF_PRECISION = 0.88
MONOTONE = {"equal": 1, "containment": 1, "char_jaccard": 1, "wh_switch": -1, "opener_switch": -1,
            "followup_marker": -1, "number_change": -1, "cosine": 1}


def training_pairs() -> tuple[list[tuple], np.ndarray]:
    keep = lambda g: not held_out(g)  # noqa: E731
    canard = [p for p in canard_pairs() if keep(p[3])]
    hint3 = hint3_pairs(splits=("train", "test"), keep=keep)
    weights = np.array([CANARD_WEIGHT] * len(canard) + [1.0] * len(hint3))
    return canard + hint3, weights


def features(pairs, encoder) -> np.ndarray:
    cache: dict = {}

    def tf(t):
        if t not in cache:
            cache[t] = text_features(t)
        return cache[t]

    X = np.array([pair_features(tf(a), tf(b)) for a, b, _, _ in pairs])
    texts = list(dict.fromkeys(t for a, b, _, _ in pairs for t in (a, b)))
    vec = encoder.encode(texts, batch_size=64)
    row = {t: i for i, t in enumerate(texts)}
    cos = np.array([float(vec[row[a]] @ vec[row[b]]) for a, b, _, _ in pairs])
    return np.hstack([X, cos[:, None]])


def _model(names):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_depth=DEPTH, max_iter=ITERATIONS, learning_rate=LEARNING_RATE,
                                          l2_regularization=L2, random_state=0, early_stopping=False,
                                          monotonic_cst=[MONOTONE.get(n, 0) for n in names])


def _precision(flags, y) -> float:
    tp = int((flags & (y == 1)).sum())
    fp = int((flags & (y == 0)).sum())
    return tp / (tp + fp) if tp + fp else 1.0


def choose_threshold(X, y, w, groups, is_canard) -> tuple[float, dict]:
    from sklearn.model_selection import GroupKFold

    names = [*FEATURES, "cosine"]
    oof = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=FOLDS).split(X, y, groups):
        oof[te] = _model(names).fit(X[tr], y[tr], sample_weight=w[tr]).predict_proba(X[te])[:, 1]
    for t in np.round(np.arange(0.50, 0.96, 0.01), 2):
        f = oof >= t
        ph, pc = _precision(f[~is_canard], y[~is_canard]), _precision(f[is_canard], y[is_canard])
        if ph >= MIN_OOF_PRECISION and pc >= MIN_OOF_PRECISION:
            rh = float((f[~is_canard] & (y[~is_canard] == 1)).sum() / max(1, (y[~is_canard] == 1).sum()))
            rc = float((f[is_canard] & (y[is_canard] == 1)).sum() / max(1, (y[is_canard] == 1).sum()))
            return float(t), {"hint3": {"precision": round(ph, 4), "recall": round(rh, 4)},
                              "canard": {"precision": round(pc, 4), "recall": round(rc, 4)}}
    raise SystemExit("no threshold reaches the out-of-fold precision on the training half")


def main(out: Path = MODEL_PATH) -> None:
    import sklearn

    from .detector import load_encoder

    pairs, w = training_pairs()
    y = np.array([p[2] for p in pairs])
    groups = np.array([p[3] for p in pairs])
    is_canard = np.array([not ("/" in g) for g in groups])  # HINT3 groups are "bot/intent"
    X = features(pairs, load_encoder())
    threshold, oof = choose_threshold(X, y, w, groups, is_canard)
    names = [*FEATURES, "cosine"]
    semantic = _model(names).fit(X, y, sample_weight=w)
    lexical = _model(list(FEATURES)).fit(X[:, :-1], y, sample_weight=w)
    spec = {
        "about": "rephrase detector models; fitted by python -m rephrase.train (see its docstring)",
        "threshold": threshold,
        "threshold_rule": f"lowest t in 0.50..0.95 with out-of-fold precision >= {MIN_OOF_PRECISION} on the "
                          f"training half's HINT3 and CANARD parts",
        "out_of_fold_at_threshold": oof,
        "training": {"pairs": len(pairs), "canard_pairs": int(is_canard.sum()), "hint3_pairs": int((~is_canard).sum()),
                     "positives": int(y.sum()), "split": "groups with crc32(group) % 2 == 0",
                     "canard_weight": CANARD_WEIGHT, "scikit_learn": sklearn.__version__,
                     "hyperparameters": {"max_depth": DEPTH, "max_iter": ITERATIONS, "learning_rate": LEARNING_RATE,
                                         "l2_regularization": L2}},
        "lexical": from_sklearn(lexical, list(FEATURES), DEPTH),
        "semantic": from_sklearn(semantic, names, DEPTH),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(spec, f, separators=(",", ":"))
        f.write("\n")
    print(json.dumps({"threshold": threshold, "out_of_fold": oof, "pairs": len(pairs)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_PATH)
