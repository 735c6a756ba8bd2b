"""Writes for releases."""
from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Release


class ReleaseError(Exception):
    """The release cannot be created or changed as asked; the message names the field."""


FIELDS = ("model", "prompt_version", "base_url", "api_key_env", "system_prompt", "shadow_enabled", "notes",
          "data_boundary")


@transaction.atomic
def release_add(*, name: str, model: str, prompt_version: str = "", base_url: str = "", api_key_env: str = "",
                system_prompt: str = "", system_prompt_file: str | Path | None = None, shadow_enabled: bool = False,
                notes: str = "", user: str = "", update: bool = False,
                data_boundary: str = Release.DataBoundary.REDACTED) -> tuple[Release, bool]:
    """Create a release (or, with update=True, change the existing one of that name).
    Returns (release, created)."""
    if system_prompt_file:
        try:
            system_prompt = Path(system_prompt_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ReleaseError(f"system_prompt_file: cannot read {system_prompt_file} ({e})") from None
    values = {"model": (model or "").strip(), "prompt_version": prompt_version or "", "base_url": base_url or "",
              "api_key_env": api_key_env or "", "system_prompt": system_prompt or "",
              "shadow_enabled": bool(shadow_enabled), "notes": notes or "", "data_boundary": data_boundary}
    existing = Release.objects.select_for_update().filter(name=name).first()
    if existing is not None and not update:
        raise ReleaseError(f"name: a release named {name!r} exists already")
    release = existing or Release(name=(name or "").strip(), created_by=user)
    for k, v in values.items():
        setattr(release, k, v)
    try:
        release.full_clean()
    except ValidationError as e:
        raise ReleaseError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in e.message_dict.items())) from None
    release.save()
    return release, existing is None


def releases_from_models(*, user: str = "") -> list[tuple[Release, bool]]:
    """One release per model name that served production turns (name = model), for logs that name the
    model but no release: each model becomes a release its turns belong to. Existing releases are kept.
    Generated cases name the LLM that wrote them: that is no release."""
    from production.models import Turn

    out = []
    models = (Turn.objects.production().exclude(model="").values_list("model", flat=True).distinct().order_by("model"))
    for model in models:
        existing = Release.objects.filter(name=model).first() or Release.objects.filter(model=model).first()
        if existing is not None:
            out.append((existing, False))
            continue
        out.append(release_add(name=model, model=model, notes="made from the model name in the production log",
                               user=user))
    return out
