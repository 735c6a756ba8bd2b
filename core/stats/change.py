"""Sequential change detection on a weekly AUC: a one-sided CUSUM of standardised weekly estimates.

Comparing each week's AUC with a trailing mean by a fixed gap fires on noise: at 20 graded answers
a week, a 0.05 gap is well inside one week's sampling error, and the old rule alarmed in 38 % of
weeks with nothing changed. A CUSUM adds up how far each week falls below its reference in units
of that week's standard error, forgets what rises above (minus an allowance ``k``), and alarms when
the sum passes ``h``. Weeks with little data have large errors and move the sum little; a real drop
keeps moving it until it alarms. Its false-alarm rate is a property of (k, h) — the average run
length with nothing changed — checked by ``benchmarks/sim_alarm.py`` at the week sizes teams have.

The AUC's standard error is Hanley & McNeil's (1982) from the counts of positives and negatives,
evaluated at the reference (the null: nothing changed), not at the week's own noisy estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Hanley-McNeil's variance vanishes at AUC 0 and 1: a perfect reference would make any later dip
# infinitely significant. The AUC it is evaluated at is kept inside these bounds.
_AUC_VAR_BOUNDS = (0.5, 0.99)


def auc_variance(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982), Radiology 143:29-36, eq. 2."""
    a = min(max(auc, _AUC_VAR_BOUNDS[0]), _AUC_VAR_BOUNDS[1])
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)


@dataclass(frozen=True)
class Week:
    auc: float | None  # None: too few answers, or one class only — skipped, the sums stay
    n_pos: int
    n_neg: int


def cusum_drop(weeks: list[Week], *, k: float, h: float, floor: float, min_reference_weeks: int = 2) -> list[dict]:
    """Per week: the reference AUC (pooled over the weeks since the last alarm, weighted by their
    positive x negative pairs), z of the week against it, the drop sum, and z against ``floor`` with
    its own sum. ``drop_alarm`` / ``floor_alarm`` when a sum passes ``h``; an alarm restarts its sum,
    and a drop alarm restarts the reference from that week (a new regime). The floor sum needs no
    reference: it asks whether the AUC has fallen below a fixed level."""
    out = []
    s_drop = s_floor = 0.0
    ref: list[Week] = []
    for w in weeks:
        row = {"reference_auc": None, "reference_weeks": len(ref), "z": None, "cusum": s_drop,
               "z_floor": None, "cusum_floor": s_floor, "drop_alarm": False, "floor_alarm": False}
        if w.auc is None:
            out.append(row)
            continue
        if len(ref) >= min_reference_weeks:
            pairs = [r.n_pos * r.n_neg for r in ref]
            a_ref = sum(p * r.auc for p, r in zip(pairs, ref)) / sum(pairs)
            var_ref = sum(p * p * auc_variance(a_ref, r.n_pos, r.n_neg) for p, r in zip(pairs, ref)) / sum(pairs) ** 2
            z = (w.auc - a_ref) / math.sqrt(auc_variance(a_ref, w.n_pos, w.n_neg) + var_ref)
            s_drop = max(0.0, s_drop - z - k)
            row.update(reference_auc=a_ref, z=z, cusum=s_drop)
            if s_drop > h:
                row["drop_alarm"] = True
                s_drop, ref = 0.0, []
        z_floor = (w.auc - floor) / math.sqrt(auc_variance(floor, w.n_pos, w.n_neg))
        s_floor = max(0.0, s_floor - z_floor - k)
        row.update(z_floor=z_floor, cusum_floor=s_floor)
        if s_floor > h:
            row["floor_alarm"] = True
            s_floor = 0.0
        ref.append(w)
        out.append(row)
    return out
