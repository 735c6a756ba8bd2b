"""What the judged pairs say about the candidate, as one pure function the shadow report, its
page, the API and the release gate all read (and the simulation in benchmarks/sim_gate.py runs):
the same pairs give the same interval everywhere.

The decision is on the **decisive win rate** (wins / (wins + losses)): a tie says neither answer
is better, so a margin on the ties-as-half scale would let a decisive loser pass when ties are
common. Ties are reported apart. Every interval is a **confidence sequence** (core.stats.sequential):
it may be read every day, and the chance that it ever excludes the truth stays below 5 %.

Two more intervals must agree before the pairs pass:
- the **length-controlled** decisive win rate (the rate at equal answer lengths): a judge that
  prefers longer answers cannot turn a worse-but-longer candidate into a pass. When the length
  difference never varies but is not zero, the length effect cannot be separated: no number, and
  no pass.
- the **human-calibrated** rate (prediction-powered inference over the audited pairs) decides
  instead of the judge's own once the audit holds enough human-picked pairs (``min_audited_pairs``);
  until then the judge decides and its bias measured on the audit is named in the reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core import stats

BETTER, NON_INFERIOR, WORSE, INCONCLUSIVE, INSUFFICIENT = (
    "better", "non_inferior", "worse", "inconclusive", "insufficient_data")
SOURCES = ("auto", "judge", "calibrated")
METHOD = ("confidence sequence (Robbins normal mixture, Waudby-Smith et al. 2024), clustered by conversation, "
          "valid at every look")


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _interval(est) -> dict | None:
    return None if est is None else {"value": est.value, "ci_low": est.lo, "ci_high": est.hi}


def _say(name: str, iv: dict) -> str:
    return f"{name} {_f(iv['value'])} (95% CS {_f(iv['ci_low'])} to {_f(iv['ci_high'])})"


def pairs_evidence(scores: Any, clusters: Any, len_diff: Any, *, margin: float = 0.0, source: str = "auto",
                   min_audited: int = 100, audit: dict | None = None) -> dict:
    """The intervals and the verdict of one set of judged pairs.

    ``scores``: 1 candidate better, 0 served better, 0.5 tie (an inconsistent pair is a tie);
    ``clusters``: conversation of each pair; ``len_diff``: candidate minus served answer length.
    ``audit``: ``{"judge": scores, "human": scores, "clusters": ids}`` on the audited pairs that
    people picked. ``margin``: 0 asks "better?" (superiority), > 0 also passes a candidate whose
    lower bound reaches 0.5 - margin (non-inferiority)."""
    s = np.asarray(scores, dtype=float)
    n = s.size
    cl = np.asarray(clusters) if n else None
    d = np.asarray(len_diff, dtype=float)
    decisive = int((s != 0.5).sum())
    judge = _interval(stats.guarded(n, 1, stats.decisive_sequence, s, cl))
    headline = _interval(stats.guarded(n, 1, stats.mean_sequence, s, cl))
    lc, length_note = None, None
    if n:
        try:
            lc = _interval(stats.length_controlled_sequence(s, d, cl))
            if decisive and np.all(d[s != 0.5] == 0):
                length_note = "every decisive pair has answers of equal length: there is no length effect to remove"
        except stats.InsufficientData as e:
            length_note = f"the length-controlled rate: {e}"
    # A judge's known length bias is for the longer answer: if the candidate's answer is never the
    # longer one, its wins were not bought by length even where the effect cannot be estimated.
    never_longer = bool(n) and bool(np.all(d[s != 0.5] <= 0))
    out = {"decisive_pairs": decisive, "ties": int((s == 0.5).sum()), "judge": judge, "win_rate_ties_half": headline,
           "length_controlled": lc, "length_note": length_note, "candidate_never_longer": never_longer,
           "calibrated": None, "judge_bias": None,
           "audited": 0, "method": METHOD}
    audited = 0
    if audit is not None and len(audit["human"]):
        j, h = np.asarray(audit["judge"], dtype=float), np.asarray(audit["human"], dtype=float)
        audited = int(h.size)
        out["audited"] = audited
        out["calibrated"] = _interval(stats.guarded(n, 1, stats.ppi_decisive_sequence, s, cl, j, h,
                                                    np.asarray(audit["clusters"])))
        jd, hd = j[j != 0.5], h[h != 0.5]
        out["judge_bias"] = {"audited": audited,
                             "judge_decisive_win_rate": float(jd.mean()) if jd.size else None,
                             "human_decisive_win_rate": float(hd.mean()) if hd.size else None}
        if jd.size and hd.size:
            out["judge_bias"]["difference"] = float(jd.mean() - hd.mean())
    return {**out, **decide(out, margin=margin, source=source, min_audited=min_audited)}


def decide(ev: dict, *, margin: float = 0.0, source: str = "auto", min_audited: int = 100) -> dict:
    """The verdict on intervals already computed (``pairs_evidence``): which interval decides
    (``source``), and the verdict with its reason under ``margin``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    use = source if source != "auto" else ("calibrated" if ev["audited"] >= min_audited else "judge")
    deciding = ev["calibrated"] if use == "calibrated" else ev["judge"]
    verdict, reason = _verdict(ev, deciding, use, margin, min_audited)
    return {"source": use, "interval": deciding, "margin": margin, "verdict": verdict, "reason": reason}


def _bias_note(ev: dict, min_audited: int) -> str:
    b = ev["judge_bias"]
    if not b:
        return "no audited pair has a human pick yet: the judge's bias is unmeasured"
    diff = b.get("difference")
    where = (f"judge-only: the audit holds {b['audited']} human-picked pairs (min_audited_pairs {min_audited}); "
             f"on them the judge's decisive win rate is {_f(b['judge_decisive_win_rate'])} vs the people's "
             f"{_f(b['human_decisive_win_rate'])}")
    return where + (f" (judge bias {diff:+.3f})" if diff is not None else "")


def _verdict(ev: dict, deciding: dict | None, use: str, margin: float, min_audited: int) -> tuple[str, str]:
    if deciding is None and ev["ties"] and not ev["decisive_pairs"]:
        return INCONCLUSIVE, (f"no decisive pair: all {ev['ties']} pairs are ties or inconsistent, so neither "
                              "answer was shown better")
    if deciding is None:
        what = "calibrated" if use == "calibrated" else "judge's"
        return INSUFFICIENT, (f"no interval for the {what} decisive win rate ({ev['decisive_pairs']} decisive pairs"
                              + (f", {ev['audited']} audited" if use == "calibrated" else "") + ")")
    name = "human-calibrated decisive win rate" if use == "calibrated" else "decisive win rate"
    said = _say(name, deciding) + f" over {ev['decisive_pairs']} decisive pairs ({ev['ties']} ties apart)"
    if use == "judge":
        said += "; " + _bias_note(ev, min_audited)
    lc = ev["length_controlled"]
    floor = 0.5 - margin
    if deciding["ci_high"] < 0.5:
        return WORSE, f"worse — {said}; the interval is below 0.500"
    if deciding["ci_low"] <= floor if margin == 0 else deciding["ci_low"] < floor:
        bound = "0.500" if margin == 0 else f"{_f(floor)} (0.5 - non_inferiority_margin {margin:.3f})"
        return INCONCLUSIVE, f"{said}; the lower bound does not clear {bound}: not shown " + (
            "better" if margin == 0 else "as good")
    if lc is None and ev["candidate_never_longer"]:
        lc_note = (f"; {ev['length_note']}, but the candidate's answer is never the longer one: its wins are not "
                   "a preference for longer answers")
        return (BETTER if deciding["ci_low"] > 0.5 else NON_INFERIOR), (
            f"{'better' if deciding['ci_low'] > 0.5 else 'not worse beyond the margin'} — {said}; lower bound "
            f"{_f(deciding['ci_low'])} clears {_f(floor)}{lc_note}")
    if lc is None:
        return INCONCLUSIVE, f"{said}, but {ev['length_note']}: a win that may be only longer answers does not pass"
    if (lc["ci_low"] <= 0.5) if margin == 0 else (lc["ci_low"] < floor):
        return INCONCLUSIVE, (f"{said}, but at equal answer lengths the {_say('rate', lc)} does not clear "
                              f"{_f(floor)}: the win rests on longer answers")
    if deciding["ci_low"] > 0.5 and lc["ci_low"] > 0.5:
        return BETTER, f"better — {said}; the interval is above 0.500; length-controlled {_say('rate', lc)} agrees"
    return NON_INFERIOR, (f"not worse beyond the margin — {said}; lower bound {_f(deciding['ci_low'])} >= "
                          f"{_f(floor)} "
                          f"(0.5 - non_inferiority_margin {margin:.3f}); length-controlled {_say('rate', lc)} agrees")
