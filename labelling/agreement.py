"""Inter-annotator agreement (Krippendorff's alpha, from the `krippendorff` package) on the
verdict and on each failure mode, per project and per annotator."""
from __future__ import annotations

from collections import defaultdict

import krippendorff
import numpy as np

from .vocabulary import VERDICTS
from .models import Annotation


def _alpha(matrix: list[list[float]], level: str) -> float | None:
    data = np.array(matrix, dtype=float)
    # alpha needs at least one unit judged twice and more than one value in play
    judged_twice = (np.sum(~np.isnan(data), axis=0) >= 2).sum()
    values = np.unique(data[~np.isnan(data)])
    if judged_twice == 0 or len(values) < 2:
        return None
    return round(float(krippendorff.alpha(reliability_data=data, level_of_measurement=level)), 4)


def _matrices(annotations: list[Annotation]):
    """Rows = annotators, columns = items with ≥ 2 annotations; NaN where not judged."""
    by_item: dict[int, dict[str, Annotation]] = defaultdict(dict)
    for a in annotations:
        by_item[a.item_id][a.annotator] = a
    items = sorted(i for i, anns in by_item.items() if len(anns) >= 2)
    annotators = sorted({name for i in items for name in by_item[i]})
    codes = sorted({c for i in items for a in by_item[i].values() for c in a.failure_modes})
    verdict = [[float(VERDICTS.index(by_item[i][n].verdict)) if n in by_item[i] and by_item[i][n].verdict in VERDICTS
                else np.nan for i in items] for n in annotators]
    modes = {c: [[float(c in by_item[i][n].failure_modes) if n in by_item[i] else np.nan for i in items]
                 for n in annotators] for c in codes}
    return items, annotators, verdict, modes


def agreement_report(*, project_id: int | None = None) -> dict:
    qs = Annotation.objects.with_verdict()
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    annotations = list(qs)
    items, annotators, verdict, modes = _matrices(annotations)
    report = {
        "items_with_multiple_annotations": len(items),
        "annotators": annotators,
        "verdict_alpha": _alpha(verdict, "nominal") if items else None,
        "failure_mode_alpha": {c: _alpha(m, "nominal") for c, m in modes.items()},
        "per_annotator": {},
    }
    # Per annotator: alpha on the items they judged, them against the others.
    for row, name in enumerate(annotators):
        cols = [k for k, _ in enumerate(items) if not np.isnan(verdict[row][k])]
        sub = [[r[k] for k in cols] for r in verdict]
        report["per_annotator"][name] = {"items": len(cols), "verdict_alpha": _alpha(sub, "nominal") if cols else None}
    return report
