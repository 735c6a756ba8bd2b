from django.db import transaction

from .models import FailureMode
from .signals import taxonomy_changed


def _changed() -> None:
    transaction.on_commit(lambda: taxonomy_changed.send(sender=FailureMode))


@transaction.atomic
def failure_mode_create(*, code: str, name: str, description: str = "", parent_code: str | None = None) -> FailureMode:
    parent = FailureMode.objects.get(code=parent_code) if parent_code else None
    mode = FailureMode(code=code, name=name, description=description, parent=parent)
    mode.full_clean()
    mode.save()
    _changed()
    return mode


@transaction.atomic
def failure_mode_update(*, mode: FailureMode, **fields) -> FailureMode:
    if "code" in fields and fields["code"] != mode.code:
        raise ValueError("code: a failure mode's code never changes (create a new mode and merge instead)")
    for name, value in fields.items():
        setattr(mode, name, value)
    mode.full_clean()
    mode.save()
    _changed()
    return mode


@transaction.atomic
def failure_mode_retire(*, mode: FailureMode) -> FailureMode:
    """No longer offered to annotators; the row and its code stay, so old labels still resolve."""
    return failure_mode_update(mode=mode, active=False)
