from .models import FailureMode


def failure_mode_tree() -> list[dict]:
    """Every mode as a plain dict (code, name, description, parent code, active), parents first."""
    modes = FailureMode.objects.select_related("parent").order_by("code")
    return [{"code": m.code, "name": m.name, "description": m.description,
             "parent": m.parent.code if m.parent else None, "active": m.active} for m in modes]


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
