"""A decision as text (the command's default), and as Markdown to paste into a pull request or a
CI job summary."""
from __future__ import annotations

from core.fmt import pct

from .evidence import num
from .models import EXIT_CODES

VERDICT_WORDS = {"pass": "pass", "worse": "worse", "inconclusive": "inconclusive", "missing": "missing",
                 "stale": "stale"}


def _offline(e: dict) -> str:
    if not e.get("candidate"):
        return "no offline score"
    d = e.get("difference") or {}
    base = e.get("baseline") or {}
    on = f"{e['testset']} v{e['version']}" + (f" (latest v{e['latest_frozen_version']})" if e.get("stale") else "")
    if not base:
        return f"{on}: candidate {num(e['candidate']['score'])}, no comparable baseline score"
    return (f"{on}: {num(e['candidate']['score'])} vs {num(base['score'])}, difference {num(d.get('value'), True)} "
            f"(95% CI {num(d.get('ci_low'), True)} to {num(d.get('ci_high'), True)}), {d.get('n', 0)} items; "
            f"margin {e['margin']}")


def _shadow(e: dict) -> str:
    if not e.get("pairs"):
        return "no judged pairs"
    d = e.get("decision_interval") or {}
    decides = "human-calibrated decisive" if e.get("decides_on") == "calibrated" else "decisive"
    return (f"win rate {num(e['win_rate'])} (ties as half; 95% CS {num(e['ci_low'])} to {num(e['ci_high'])}), "
            f"{decides} {num(d.get('value'))} (95% CS {num(d.get('ci_low'))} to {num(d.get('ci_high'))}) decides; "
            f"{e['pairs']} pairs over {e['days_with_pairs']} days; inconsistent {pct(e['inconsistent_rate'])}; "
            f"read from {e['min_pairs']} pairs / {e['min_days']} days")


def _ab(e: dict) -> str:
    if not e.get("start"):
        return "no canary turns"
    fail = next((m for m in e["metrics"] if m["name"] == "failure_candidate"), None)
    rate = (f"; failure-candidate rate {pct(fail['candidate'].get('rate'))} vs {pct(fail['baseline'].get('rate'))}"
            if fail else "")
    return f"{e['start']}..{e['end']}, {e['candidate_turns']} vs {e['baseline_turns']} turns{rate}; margin {e['margin']}"


def _critical(rows: list[dict]) -> tuple[str, str]:
    if not rows:
        return "none", "no mode flagged critical"
    verdict = "worse" if any(r["verdict"] == "worse" for r in rows) else \
        "pass" if all(r["verdict"] == "pass" for r in rows) else "inconclusive"
    return verdict, "; ".join(f"{r['code']} {pct(r['candidate']['rate'])} vs {pct(r['baseline']['rate'])}"
                              for r in rows)


def as_text(decision) -> str:
    lines = [f"release gate: {decision.decision} (exit {decision.exit_code}) — candidate {decision.candidate.name}, "
             f"baseline {decision.baseline.name}"]
    lines += [f"  - {r}" for r in decision.reasons]
    lines.append(f"gate decision {decision.pk}: {decision.decision}; policy {decision.policy_sha256[:12]} "
                 f"({decision.policy_source})" + (f"; as of {decision.as_of}" if decision.as_of else ""))
    return "\n".join(lines)


def _guardrails(g: dict) -> tuple[str, str]:
    metrics = [m for m in g.get("metrics", []) if m["verdict"] != "missing"]
    if not metrics:
        return "missing", "latency and cost not recorded on the pairs"
    verdict = "worse" if any(m["verdict"] == "worse" for m in metrics) else \
        "inconclusive" if any(m["verdict"] == "inconclusive" for m in metrics) else "pass"
    return verdict, "; ".join(f"{m['what']} ×{m['ratio']:.2f}" + (f" (limit {m['limit']:.2f})" if m["limit"] else "")
                              if m["ratio"] is not None else f"{m['what']} n/a" for m in metrics)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(decision) -> str:
    e = decision.evidence
    crit_verdict, crit_text = _critical(e.get("critical_modes", []))
    rows = [("offline", e["offline"]["verdict"], _offline(e["offline"])),
            ("shadow" + ("" if e["shadow"].get("accepted") else " (not accepted by the policy)"),
             e["shadow"]["verdict"], _shadow(e["shadow"])),
            ("A/B" + ("" if e["ab"].get("accepted") else " (not accepted by the policy)"),
             e["ab"]["verdict"], _ab(e["ab"])),
            ("critical modes", crit_verdict, crit_text)]
    if "guardrails" in e:
        rows.append(("guardrails (candidate/served)", *_guardrails(e["guardrails"])))
    out = [f"### Release gate: `{decision.decision}` — candidate `{decision.candidate.name}`, "
           f"baseline `{decision.baseline.name}`" + (f" — as of {decision.as_of}" if decision.as_of else ""), "",
           "| evidence | verdict | numbers |", "|---|---|---|"]
    out += [f"| {name} | {VERDICT_WORDS.get(v, v)} | {_cell(text)} |" for name, v, text in rows]
    out += ["", "**Reasons**", ""]
    out += [f"{i}. {r}" for i, r in enumerate(decision.reasons, 1)]
    when = decision.created_at.strftime("%Y-%m-%d %H:%M UTC") if decision.created_at else ""
    out += ["", f"<sub>evalgap gate decision {decision.pk} · {when} · exit code {EXIT_CODES[decision.decision]} · "
                f"policy sha256 `{decision.policy_sha256[:12]}` ({_cell(decision.policy_source)}) · asked by "
                f"{_cell(decision.requested_by)} via {decision.via}</sub>"]
    return "\n".join(out)
