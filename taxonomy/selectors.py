from .models import FailureMode


def failure_mode_tree() -> list[dict]:
    """Every mode as a plain dict (code, name, description, parent code, active, critical), parents first."""
    modes = FailureMode.objects.select_related("parent").order_by("code")
    return [{"code": m.code, "name": m.name, "description": m.description,
             "parent": m.parent.code if m.parent else None, "active": m.active, "critical": m.critical}
            for m in modes]


def critical_modes() -> list[dict]:
    """The modes flagged critical, each with every code that counts as it: its own, its
    descendants' (a child of SAFETY is unsafe too), and the codes merged into any of those (old
    labels and verdicts still name them). `[{code, name, active, codes}]`, by code."""
    rows = list(FailureMode.objects.values_list("code", "name", "active", "critical", "parent__code",
                                                "merged_into__code"))
    children: dict[str, list[str]] = {}
    merged: dict[str, list[str]] = {}
    for code, _, _, _, parent, into in rows:
        if parent:
            children.setdefault(parent, []).append(code)
        if into:
            merged.setdefault(into, []).append(code)
    out = []
    for code, name, active, critical, _, _ in sorted(rows):
        if not critical:
            continue
        codes, todo = set(), [code]
        while todo:
            c = todo.pop()
            if c not in codes:
                codes.add(c)
                todo.extend(children.get(c, []) + merged.get(c, []))
        out.append({"code": code, "name": name, "active": active, "codes": sorted(codes)})
    return out


def known_codes() -> set[str]:
    return set(FailureMode.objects.values_list("code", flat=True))


def current_version() -> int:
    from .models import TaxonomyVersion

    return TaxonomyVersion.objects.order_by("-number").values_list("number", flat=True).first() or 1


def resolve_code(code: str) -> str:
    """The surviving code for a label: follows merges (retired-but-unmerged codes stay as they are)."""
    from .models import FailureMode

    seen = set()
    mode = FailureMode.objects.filter(code=code).select_related("merged_into").first()
    while mode is not None and mode.merged_into_id and mode.code not in seen:
        seen.add(mode.code)
        mode = mode.merged_into
    return mode.code if mode else code


def pending_proposals():
    from .models import Proposal

    return Proposal.objects.filter(status=Proposal.Status.PENDING).order_by("-id")
