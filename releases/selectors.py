"""Reads: releases, and which production turns each one served."""
from __future__ import annotations

from django.db.models import Min, Max, Q, QuerySet

from production.models import Turn

from .models import Release


def release_get(*, name: str) -> Release | None:
    return Release.objects.filter(name=name).first()


def release_list() -> QuerySet[Release]:
    return Release.objects.all()


def release_turn_filter(release: Release) -> Q:
    """A turn belongs to a release when its metadata.release is the release's name; a turn that names
    no release belongs to the release whose model served it."""
    return Q(metadata__release=release.name) | (~Q(metadata__has_key="release") & Q(model=release.model))


def release_turns(release: Release) -> QuerySet[Turn]:
    """The production turns the release served (a generated case was served by no release)."""
    return Turn.objects.production().filter(release_turn_filter(release))


def release_serving_span(release: Release) -> tuple:
    """(first, last) timestamp of the turns the release served, or (None, None)."""
    span = release_turns(release).aggregate(first=Min("timestamp"), last=Max("timestamp"))
    return span["first"], span["last"]


def release_as_dict(release: Release) -> dict:
    return {"name": release.name, "model": release.model, "prompt_version": release.prompt_version,
            "base_url": release.base_url, "api_key_env": release.api_key_env,
            "system_prompt": release.system_prompt, "shadow_enabled": release.shadow_enabled,
            "data_boundary": release.data_boundary,
            "created_at": release.created_at.isoformat() if release.created_at else None}
