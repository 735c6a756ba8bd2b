"""The release gate: weigh the evidence (gate.evidence), decide, and record the decision.

The rule, in order:
1. `block` when any evidence says worse: an offline regression beyond the margin, a shadow win
   rate below 0.5, an A/B rate worse beyond the margin, or a critical failure mode whose rate
   among the candidate's judged answers is above the served answers' (intervals apart).
2. `insufficient_evidence` when the offline score does not pass (missing, stale, inconclusive):
   offline is a necessary gate.
3. `ship` when the production evidence the policy accepts (shadow, ab, either, both) passes.
4. `insufficient_evidence` otherwise — in particular offline alone, however good, never ships.
"""
from __future__ import annotations

import json

from django.db import transaction

from core.fmt import pct
from releases.models import Release
from releases.selectors import release_get

from . import evidence as ev
from .models import Decision, GateDecision
from .policy import GateUsageError, Policy, policy_load

__all__ = ["GateUsageError", "gate_decide", "gate_evaluate"]


def _release(name: str, role: str) -> Release:
    rel = release_get(name=name) if name else None
    if rel is None:
        raise GateUsageError(f"--{role}: no release named {name!r} (release_add {name or 'NAME'} --model MODEL)")
    return rel


def gate_evaluate(*, candidate: str, baseline: str, policy: Policy) -> dict:
    """The decision, its reasons and the evidence, without recording anything."""
    cand, base = _release(candidate, "candidate"), _release(baseline, "baseline")
    if cand.pk == base.pk:
        raise GateUsageError(f"--baseline: {baseline} is the candidate itself")
    offline = ev.offline_evidence(cand, base, policy)
    shadow = ev.shadow_evidence(cand, base, policy)
    ab = ev.ab_evidence(cand, base, policy)
    critical = ev.critical_evidence(cand, shadow)
    evidence = {"offline": offline, "shadow": shadow, "ab": ab, "critical_modes": critical}

    blocking = []
    if offline["verdict"] == ev.WORSE:
        blocking.append(offline["reason"])
    if shadow["verdict"] == ev.WORSE:
        blocking.append(shadow["reason"])
    if ab["verdict"] == ev.WORSE:
        blocking.extend(ab["reasons"])
    blocking.extend(m["reason"] for m in critical if m["verdict"] == ev.WORSE)

    production = {"shadow": shadow["verdict"] == ev.PASS, "ab": ab["verdict"] == ev.PASS}
    accept = policy.accept
    enough = {"shadow": production["shadow"], "ab": production["ab"], "either": any(production.values()),
              "both": all(production.values())}[accept]
    context = [offline["reason"], shadow["reason"], ab["reason"], _critical_summary(critical)]
    if shadow.get("input_note"):  # the shadow evidence answered other text than production did
        context.append(f"shadow: {shadow['input_note']}")
    if blocking:
        decision = Decision.BLOCK
        reasons = blocking + [r for r in context if r not in blocking and not r.startswith("critical mode regression")]
    elif offline["verdict"] != ev.PASS:
        decision = Decision.INSUFFICIENT
        reasons = context + ["offline is a necessary gate: without a passing offline comparison on the latest "
                             "frozen test-set version nothing ships"]
    elif enough:
        decision = Decision.SHIP
        reasons = context
    else:
        decision = Decision.INSUFFICIENT
        wanted = {"shadow": "a passing shadow evaluation", "ab": "a passing A/B comparison",
                  "either": "a passing shadow evaluation or A/B comparison",
                  "both": "both a passing shadow evaluation and a passing A/B comparison"}[accept]
        reasons = context + [f"offline alone is never enough to ship: the policy (accept: {accept}) needs {wanted}"]
    return {"decision": str(decision), "reasons": reasons, "evidence": _plain(evidence),
            "candidate": cand, "baseline": base}


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
                auth: str = "") -> GateDecision:
    """Decide and record the decision with who asked, the policy in force (default: the server's,
    GATE_POLICY_FILE or settings) and the evidence."""
    policy = policy or policy_load()
    result = gate_evaluate(candidate=candidate, baseline=baseline, policy=policy)
    return GateDecision.objects.create(
        candidate=result["candidate"], baseline=result["baseline"], decision=result["decision"],
        reasons=result["reasons"], evidence=result["evidence"], policy=policy.values,
        policy_sha256=policy.sha256, policy_source=policy.source[:600], requested_by=(requested_by or "unknown")[:150],
        via=via, auth=auth)
