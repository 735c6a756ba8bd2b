"""The release gate: weigh the evidence (gate.evidence), decide, and record the decision.

The rule, in order:
1. `block` when any evidence says worse: an offline regression beyond the margin, a shadow win
   rate below 0.5, an A/B rate worse beyond the margin, or a critical failure mode whose rate
   among the candidate's judged answers is above the served answers' (intervals apart).
2. `insufficient_evidence` when the offline score does not pass (missing, stale, inconclusive):
   offline is a necessary gate.
3. `ship` when the production evidence the policy accepts (shadow, ab, either, both) passes and no
   guardrail (latency, cost: gate.guardrails) is above its limit unresolved; a candidate shown
   cheaper says so first ("cheaper at equal quality").
4. `insufficient_evidence` otherwise — in particular offline alone, however good, never ships.

A guardrail shown above its limit blocks (1.). With `as_of`, every piece of evidence is read as it
stood at the end of that day (pairs judged, runs finished, turns served by then).
"""
from __future__ import annotations

import json
from datetime import date

from django.db import transaction
from django.utils import timezone

from core.fmt import pct
from releases.models import Release
from releases.selectors import release_get

from . import evidence as ev
from . import guardrails as gr
from .models import Decision, GateDecision
from .policy import GateUsageError, Policy, policy_load

__all__ = ["GateUsageError", "gate_decide", "gate_evaluate"]


def _release(name: str, role: str) -> Release:
    rel = release_get(name=name) if name else None
    if rel is None:
        raise GateUsageError(f"--{role}: no release named {name!r} (release_add {name or 'NAME'} --model MODEL)")
    return rel


def gate_evaluate(*, candidate: str, baseline: str, policy: Policy, as_of: date | None = None) -> dict:
    """The decision, its reasons and the evidence, without recording anything. With `as_of`, the
    decision as it would have been made at the end of that day."""
    cand, base = _release(candidate, "candidate"), _release(baseline, "baseline")
    if cand.pk == base.pk:
        raise GateUsageError(f"--baseline: {baseline} is the candidate itself")
    if as_of is not None and as_of > timezone.now().date():
        raise GateUsageError(f"--as-of: {as_of} is after today; the evidence of a day to come is not in yet")
    offline = ev.offline_evidence(cand, base, policy, as_of)
    shadow = ev.shadow_evidence(cand, base, policy, as_of)
    ab = ev.ab_evidence(cand, base, policy, as_of)
    critical = ev.critical_evidence(cand, shadow)
    # The guardrails read the shadow evidence's pairs: one window for every number about them.
    guard = gr.guardrail_evidence(cand, policy, since=ev._date(shadow["since"]), until=ev._date(shadow["until"]),
                                  as_of=as_of)
    evidence = {"offline": offline, "shadow": shadow, "ab": ab, "critical_modes": critical, "guardrails": guard}

    blocking = []
    if offline["verdict"] == ev.WORSE:
        blocking.append(offline["reason"])
    if shadow["verdict"] == ev.WORSE:
        blocking.append(shadow["reason"])
    if ab["verdict"] == ev.WORSE:
        blocking.extend(ab["reasons"])
    blocking.extend(m["reason"] for m in critical if m["verdict"] == ev.WORSE)
    blocking.extend(m["reason"] for m in guard["metrics"] if m["verdict"] == gr.WORSE)
    held = [m["reason"] for m in guard["metrics"] if m["verdict"] == gr.INCONCLUSIVE and m["limit"] is not None]

    production = {"shadow": shadow["verdict"] == ev.PASS, "ab": ab["verdict"] == ev.PASS}
    accept = policy.accept
    enough = {"shadow": production["shadow"], "ab": production["ab"], "either": any(production.values()),
              "both": all(production.values())}[accept]
    context = [offline["reason"], shadow["reason"], ab["reason"], _critical_summary(critical),
               *(m["reason"] for m in guard["metrics"])]
    if shadow.get("input_note"):  # the shadow evidence answered other text than production did
        context.append(f"shadow: {shadow['input_note']}")
    if blocking:
        decision = Decision.BLOCK
        reasons = blocking + [r for r in context if r not in blocking and not r.startswith("critical mode regression")]
    elif offline["verdict"] != ev.PASS:
        decision = Decision.INSUFFICIENT
        reasons = context + ["offline is a necessary gate: without a passing offline comparison on the latest "
                             "frozen test-set version nothing ships"]
    elif enough and held:
        decision = Decision.INSUFFICIENT
        reasons = held + [r for r in context if r not in held] + [
            "the quality evidence passes, but a guardrail estimate is above its limit without the interval "
            "showing it: more pairs will tell"]
    elif enough:
        decision = Decision.SHIP
        cheaper = gr.cheaper_at_equal_quality(guard)
        reasons = ([cheaper] if cheaper else []) + context
    else:
        decision = Decision.INSUFFICIENT
        wanted = {"shadow": "a passing shadow evaluation", "ab": "a passing A/B comparison",
                  "either": "a passing shadow evaluation or A/B comparison",
                  "both": "both a passing shadow evaluation and a passing A/B comparison"}[accept]
        reasons = context + [f"offline alone is never enough to ship: the policy (accept: {accept}) needs {wanted}"]
    if as_of is not None:
        reasons = [f"as of {as_of}: the evidence as it stood at the end of that day (pairs judged, offline runs "
                   f"finished, test-set versions frozen, turns served by {as_of} 24:00 UTC)"] + reasons
    return {"decision": str(decision), "reasons": reasons, "evidence": _plain(evidence),
            "candidate": cand, "baseline": base, "as_of": as_of}


def _plain(value):
    """JSON-ready (numpy scalars from the statistics become plain numbers)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _critical_summary(critical: list[dict]) -> str:
    if not critical:
        return "critical modes: none flagged critical in the taxonomy"
    worse = [m for m in critical if m["verdict"] == ev.WORSE]
    if worse:
        return "; ".join(m["reason"] for m in worse)
    if not critical[0]["pairs"]:
        return "critical modes: no judged pairs to compare the candidate's critical failure modes on"
    parts = [f"{m['code']} {pct(m['candidate']['rate'])} vs {pct(m['baseline']['rate'])}" for m in critical]
    return (f"critical modes: none higher on the candidate with intervals apart over {critical[0]['pairs']} "
            f"judged pairs ({'; '.join(parts)})")


@transaction.atomic
def gate_decide(*, candidate: str, baseline: str, policy: Policy | None = None, requested_by: str, via: str,
                auth: str = "", as_of: date | None = None) -> GateDecision:
    """Decide and record the decision with who asked, the policy in force (default: the server's,
    GATE_POLICY_FILE or settings), the evidence, and `as_of` when asked about a past day."""
    policy = policy or policy_load()
    result = gate_evaluate(candidate=candidate, baseline=baseline, policy=policy, as_of=as_of)
    return GateDecision.objects.create(
        candidate=result["candidate"], baseline=result["baseline"], decision=result["decision"],
        reasons=result["reasons"], evidence=result["evidence"], policy=policy.values,
        policy_sha256=policy.sha256, policy_source=policy.source[:600], requested_by=(requested_by or "unknown")[:150],
        via=via, auth=auth, as_of=as_of)
