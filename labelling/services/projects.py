"""The Label Studio project evalgap labels in, and its config kept in step with the taxonomy."""
from __future__ import annotations

import hashlib
import logging
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

from taxonomy.selectors import failure_mode_tree

from ..client import LabelStudioClient, LabelStudioError
from ..label_config import build_label_config
from ..models import LabelStudioProject

log = logging.getLogger(__name__)


def get_client() -> LabelStudioClient:
    if not settings.LABEL_STUDIO_URL or not settings.LABEL_STUDIO_API_KEY:
        raise LabelStudioError("Label Studio is not configured: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY "
                               "(scripts/labelstudio.sh env prints them for the local instance)")
    return _client(settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY)


@lru_cache(maxsize=8)
def _client(url: str, api_key: str) -> LabelStudioClient:
    # One per process and instance: building the SDK client takes ~0.1 s, paid at the start of
    # every push otherwise (its HTTP connections are then reused too).
    return LabelStudioClient(url, api_key)


def current_config() -> str:
    return build_label_config(failure_mode_tree())


def _sha(config: str) -> str:
    return hashlib.sha256(config.encode("utf-8")).hexdigest()


def webhook_url() -> str:
    return settings.EVALGAP_PUBLIC_URL.rstrip("/") + "/api/labelling/webhook/"


def project_ensure(*, client: LabelStudioClient, title: str | None = None) -> LabelStudioProject:
    """The project row, creating the Label Studio project (and its webhook) when missing."""
    title = title or settings.LABEL_STUDIO_PROJECT_TITLE
    project = LabelStudioProject.objects.filter(title=title).first()
    if project is not None and project.kind != LabelStudioProject.Kind.TURNS:
        raise LabelStudioError(f"project {title!r} is a {project.kind} project, not one for production turns")
    if project is None:
        config = current_config()
        # A project left by a run whose database was lost is adopted, not duplicated.
        ls_id = client.find_project(title)
        adopted = ls_id is not None
        if not adopted:
            ls_id = client.create_project(
                title, config, description="Answers from production, selected by evalgap. Judge each answer.")
        project = LabelStudioProject.objects.create(title=title, ls_project_id=ls_id, needs_reconcile=adopted,
                                                    config_sha256="" if adopted else _sha(config),
                                                    config_synced_at=None if adopted else timezone.now())
        if adopted:  # created elsewhere, maybe from an older taxonomy
            project_sync_config(client=client, project=project, config=config)
    if settings.LABEL_STUDIO_WEBHOOK_SECRET and settings.EVALGAP_PUBLIC_URL and project.webhook_id is None:
        project.webhook_id = client.ensure_webhook(project.ls_project_id, webhook_url(),
                                                   settings.LABEL_STUDIO_WEBHOOK_SECRET,
                                                   header_name=settings.LABEL_STUDIO_WEBHOOK_HEADER)
        project.save(update_fields=["webhook_id"])
    return project


def project_sync_config(*, client: LabelStudioClient, project: LabelStudioProject, config: str | None = None) -> bool:
    """Push the taxonomy's config to one project; False when it was already current.

    The strict validation runs first. It fails when a code still used by annotations is no longer
    offered (a mode was retired): that is expected — the code stays in our taxonomy, so those
    annotations still resolve — and the change is then applied without the strict check.
    """
    config = config or current_config()
    sha = _sha(config)
    if project.config_sha256 == sha:
        return False
    try:
        client.update_config(project.ls_project_id, config)
    except LabelStudioError as e:
        if "still exist in annotations" not in str(e):
            raise
        log.warning("project %s: config drops codes still used by annotations: %s", project.ls_project_id, e)
        client.update_config(project.ls_project_id, config, strict=False)
    project.config_sha256 = sha
    project.config_synced_at = timezone.now()
    project.save(update_fields=["config_sha256", "config_synced_at"])
    return True


def projects_sync_config() -> int:
    """Bring every project's config in line with the taxonomy; returns how many changed."""
    # Pairwise projects have their own fixed config: the taxonomy is not in it.
    projects = list(LabelStudioProject.objects.filter(kind=LabelStudioProject.Kind.TURNS))
    if not projects:
        return 0
    client, config = get_client(), current_config()
    return sum(project_sync_config(client=client, project=p, config=config) for p in projects)
