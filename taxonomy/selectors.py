from .models import FailureMode


def failure_mode_tree() -> list[dict]:
    """Every mode as a plain dict (code, name, description, parent code, active), parents first."""
    modes = FailureMode.objects.select_related("parent").order_by("code")
    return [{"code": m.code, "name": m.name, "description": m.description,
             "parent": m.parent.code if m.parent else None, "active": m.active} for m in modes]


def known_codes() -> set[str]:
    return set(FailureMode.objects.values_list("code", flat=True))
