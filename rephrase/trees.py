"""A boosted-trees classifier evaluated with numpy: the fitted model is plain JSON in the repo.

Trees are stored complete (every leaf at depth ``depth``; a shallower leaf is padded with splits
that send every row the same way), so evaluation is ``depth`` vectorised gathers per tree over
the whole batch, with no Python loop per row. Fitted by ``rephrase.train`` (scikit-learn's
HistGradientBoostingClassifier, build time only).
"""
from __future__ import annotations

import numpy as np


class Trees:
    def __init__(self, spec: dict):
        self.features: tuple[str, ...] = tuple(spec["features"])
        self.depth = int(spec["depth"])
        self.base = float(spec["base"])
        self.feature = np.asarray(spec["feature"], dtype=np.intp)  # (trees, 2**depth - 1)
        self.threshold = np.asarray(spec["threshold"], dtype=np.float64)  # go right when x > threshold
        self.leaf = np.asarray(spec["leaf"], dtype=np.float64)  # (trees, 2**depth)

    CHUNK = 1024  # rows evaluated together: (rows x trees) index arrays stay in cache

    def logit(self, X: np.ndarray) -> np.ndarray:
        """Raw score (log-odds) of each row of ``X`` (rows x features)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        n, f = X.shape
        out = np.empty(n)
        n_trees = self.feature.shape[0]
        # Node arrays flattened over trees: node k of tree t is at t * width + k.
        width, leaves = self.feature.shape[1], self.leaf.shape[1]
        feat, thr, leaf = self.feature.ravel(), self.threshold.ravel(), self.leaf.ravel()
        tree_node = np.arange(n_trees, dtype=np.intp) * width
        tree_leaf = np.arange(n_trees, dtype=np.intp) * leaves
        for start in range(0, n, self.CHUNK):
            x = X[start:start + self.CHUNK].ravel()
            rows = (np.arange(len(x) // f, dtype=np.intp) * f)[:, None]
            idx = np.zeros((len(rows), n_trees), dtype=np.intp)
            for d in range(self.depth):
                node = tree_node + (idx + (2 ** d - 1))
                idx = 2 * idx + (x[rows + feat[node]] > thr[node])
            out[start:start + len(rows)] = leaf[tree_leaf + idx].sum(axis=1)
        out += self.base
        return out


def from_sklearn(model, features: list[str], depth: int) -> dict:
    """JSON spec of a fitted HistGradientBoostingClassifier (binary) with trees of depth <= ``depth``."""
    n_int, n_leaf = 2 ** depth - 1, 2 ** depth
    feats, thrs, leaves = [], [], []
    for (pred,) in model._predictors:  # one predictor per iteration for binary classification
        nodes = pred.nodes
        f = [0] * n_int
        th = [float("inf")] * n_int
        lv = [0.0] * n_leaf

        def fill(src: int, pos: int, level: int) -> None:
            node = nodes[src]
            if level == depth:
                if not node["is_leaf"]:
                    raise ValueError("tree deeper than depth")
                lv[pos] = float(node["value"])
                return
            k = 2 ** level - 1 + pos
            if node["is_leaf"]:
                # Padding: send everything left (x > +inf is never true) down to copies of the leaf.
                f[k], th[k] = 0, float("inf")
                fill(src, 2 * pos, level + 1)
                fill(src, 2 * pos + 1, level + 1)
                return
            f[k], th[k] = int(node["feature_idx"]), float(node["num_threshold"])
            fill(int(node["left"]), 2 * pos, level + 1)
            fill(int(node["right"]), 2 * pos + 1, level + 1)

        fill(0, 0, 0)
        feats.append(f)
        thrs.append(th)
        leaves.append(lv)
    return {"features": list(features), "depth": depth, "base": float(np.ravel(model._baseline_prediction)[0]),
            "feature": feats, "threshold": thrs, "leaf": leaves}
