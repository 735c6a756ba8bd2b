"""Shadow evaluation pages: per release, the win rate per day with its interval, the decision and
what it rests on, the per-mode table, the judge's calibration, and a pair browser. Reads only
shadow's selectors. Reports are dashboards; the pair pages show turn text (redacted in the templates
unless the user may see raw turns)."""
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from core.roles import ASK_GATE, DASHBOARDS, TURNS, require_perm
from gate import selectors as gate
from shadow import selectors as shadow

from . import charts

OUTCOMES = [("", "all"), ("candidate_win", "candidate better"), ("served_win", "served better"), ("tie", "tie"),
            ("inconsistent", "inconsistent"), ("unjudged", "unjudged"), ("diverged", "diverged (tool call)")]


def _days_param(request, default: int, high: int = 90) -> int:
    try:
        return max(1, min(high, int(request.GET.get("days") or default)))
    except ValueError:
        return default


@require_perm(DASHBOARDS)
def shadow_list(request):
    rows = []
    for r in shadow.shadow_releases():
        report = shadow.shadow_report(r["name"], gate.shadow_window_days())
        rows.append({**r, "report": report})
    return render(request, "dashboard/shadow_list.html", {"releases": rows})


@require_perm(DASHBOARDS)
def shadow_release(request, name: str):
    if shadow._release(name) is None:
        raise Http404(f"no release {name!r}")
    # By default the gate's window: the page and the gate count the same pairs.
    days = _days_param(request, 0) if request.GET.get("days") else gate.shadow_window_days()
    report = shadow.shadow_report(name, days)
    daily = shadow.shadow_daily(name, 30)
    # The chart starts at the first day with pairs (a new candidate has no month of history).
    first = next((i for i, d in enumerate(daily) if d["pairs"]), len(daily))
    daily = daily[first:]
    chart = charts.band_chart(
        chart_id="shadow-win-rate-daily", title=f"{name}: win rate against the served answers per day (ties as half)",
        x=[d["day"] for d in daily], values=[d["win_rate"] for d in daily], lows=[d["ci_low"] for d in daily],
        highs=[d["ci_high"] for d in daily], counts=[d["pairs"] for d in daily], width=1100, height=280)
    rates = []
    decisive = report["candidate_wins"] + report["served_wins"]
    for key, label, n in (("win_rate", "win rate (ties as half)", report["pairs"]),
                          ("decisive_win_rate", "decisive win rate (ties left out)", decisive),
                          ("tie_rate", "tie rate", report["pairs"]),
                          ("inconsistent_rate", "inconsistent rate", report["pairs"]),
                          ("length_controlled_win_rate", "length-controlled decisive win rate (at equal lengths)",
                           decisive),
                          ("calibrated_decisive_win_rate", "human-calibrated decisive win rate (judge + audit)",
                           report["evidence"]["audited"])):
        rates.append({"label": label, "n": n, **report["intervals"][key]})
    return render(request, "dashboard/shadow_release.html", {
        "name": name, "report": report, "chart": chart, "daily": daily, "rates": rates,
        "calibrations": list(shadow.calibration_list()[:8]),
        "agreement": shadow.audit_agreement_by_month(release=name),
        "runs": list(shadow.run_list(name)[:10]), "judge_runs": list(shadow.judge_run_list()[:5]),
        "outcomes": OUTCOMES,
        # The release gate's button: this is the candidate's page.
        "gate_releases": gate.gate_releases(), "can_ask_gate": request.user.has_perm(ASK_GATE),
        "gate_last": gate.decision_list(release=name, as_candidate_only=True).first(),
    })


@require_perm(TURNS)
def shadow_pairs(request, name: str):
    if shadow._release(name) is None:
        raise Http404(f"no release {name!r}")
    outcome = request.GET.get("outcome", "")
    if outcome not in dict(OUTCOMES):
        outcome = ""
    page = Paginator(shadow.pair_list(name, outcome=outcome or None), 25).get_page(request.GET.get("page"))
    return render(request, "dashboard/shadow_pairs.html", {"name": name, "page": page, "outcome": outcome,
                                                           "outcomes": OUTCOMES})


@require_perm(TURNS)
def shadow_pair(request, pk: int):
    pair = shadow.pair_get(pk)
    if pair is None:
        raise Http404(f"no pair {pk}")
    verdicts = sorted(pair.verdicts.all(), key=lambda v: (v.judge_model, v.prompt_version, v.order))
    return render(request, "dashboard/shadow_pair.html", {"pair": pair, "verdicts": verdicts,
                                                          "conversation": shadow.pair_conversation(pair)})
