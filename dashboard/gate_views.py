"""Release gate pages: the decisions about each release with the evidence behind them, and the
button that asks the gate (recorded like the command's and the API's). Reads gate's selectors;
asking calls the one service, with the permission gate.ask_gate checked here on every POST."""
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.roles import ASK_GATE, DASHBOARDS, require_perm
from gate import selectors as gate
from gate.services import GateUsageError, gate_decide

@require_perm(DASHBOARDS)
def gate_list(request):
    return render(request, "dashboard/gate_list.html", {
        "decisions": list(gate.decision_list()[:50]), "releases": gate.gate_releases(),
        "can_ask": request.user.has_perm(ASK_GATE)})


@require_perm(DASHBOARDS)
def gate_release(request, name: str):
    release = gate.release_by_name(name)
    if release is None:
        raise Http404(f"no release {name!r}")
    return render(request, "dashboard/gate_release.html", {
        "release": release, "decisions": list(gate.decision_list(release=name)[:100]),
        "releases": [r for r in gate.gate_releases() if r.pk != release.pk], "can_ask": request.user.has_perm(ASK_GATE)})


@require_perm(DASHBOARDS)
def gate_decision(request, pk: int):
    decision = gate.decision_get(pk=pk)
    if decision is None:
        raise Http404(f"no gate decision {pk}")
    e = decision.evidence
    return render(request, "dashboard/gate_decision.html", {
        "d": decision, "offline": e.get("offline", {}), "shadow": e.get("shadow", {}), "ab": e.get("ab", {}),
        "critical": e.get("critical_modes", []), "guardrails": e.get("guardrails", {}).get("metrics", []),
        "markdown": gate.decision_markdown(decision),
        "policy": gate.decision_policy_rows(decision)})


@require_perm(ASK_GATE)
@require_POST
def gate_ask(request):
    candidate, baseline = request.POST.get("candidate", "").strip(), request.POST.get("baseline", "").strip()
    back = request.POST.get("back") or reverse("dashboard:gate")
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("dashboard:gate")
    try:
        decision = gate_decide(candidate=candidate, baseline=baseline,
                               requested_by=request.user.get_username(), via="web", auth="session")
    except GateUsageError as e:
        messages.error(request, f"The gate was not asked — {e}")
        return redirect(back)
    return redirect(reverse("dashboard:gate-decision", args=[decision.pk]))
