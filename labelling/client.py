"""The one module that talks to Label Studio (LS 1.23.2, label-studio-sdk 2.1.2).

Thin adapter, no Django: the caller passes settings.LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY.
Error contract:
  * LabelStudioUnavailable - connection refused/reset, timeout, 5xx, 429: retry later (Celery).
  * LabelStudioError - 4xx / validation / unexpected response: retrying will not help.
SDK-level retries are switched off (max_retries=0): they would silently repeat non-idempotent
POSTs (task import, annotation create) and hide outages from the caller's retry policy.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import httpx
import orjson
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
IMPORT_CHUNK = 10_000  # LS documents 250k tasks / 200 MB per POST; smaller chunks bound memory and request time.
LIST_PAGE_SIZE = 5000  # Community has no max page size (TASK_API_PAGE_SIZE_MAX unset).


class LabelStudioUnavailable(Exception):
    """LS unreachable or failing server-side; safe to retry later."""


class LabelStudioError(Exception):
    """LS rejected the request (4xx) or answered something unexpected."""

    def __init__(self, message: str, status_code: int | None = None, body=None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body


def _message(body) -> str:
    """Flatten LS/DRF error bodies ({"detail":...}, {"validation_errors": {...}}, {"field": [...]}) to one line."""
    if isinstance(body, dict):
        for key in ("validation_errors", "detail", "error", "errors"):
            if key in body:
                return _message(body[key])
        return "; ".join(f"{k}: {_message(v)}" for k, v in body.items())
    if isinstance(body, (list, tuple)):
        return " ".join(_message(v) for v in body)
    return str(body).strip()


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        code = exc.status_code or 0
        msg = f"{what}: HTTP {code}: {_message(exc.body)}"
        if code >= 500 or code in (408, 429):
            raise LabelStudioUnavailable(msg) from exc
        raise LabelStudioError(msg, code, exc.body) from exc
    except (httpx.TransportError, httpx.TimeoutException) as exc:  # connect/read errors, timeouts
        raise LabelStudioUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:  # unparseable/unexpected response shape
        raise LabelStudioError(f"{what}: unexpected response: {exc}") from exc


class LabelStudioClient:
    def __init__(self, url: str, api_key: str, timeout: float = 30.0, import_timeout: float = 300.0):
        if not url or not api_key:
            raise LabelStudioError("Label Studio url and api_key are required")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.import_timeout = import_timeout
        self._ls = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout)
        self._opts = {"max_retries": 0}
        self._slow_opts = {"max_retries": 0, "timeout_in_seconds": import_timeout}

    # -- health / users -------------------------------------------------------------
    def ping(self) -> str:
        """Return LS release; also proves the token works (version endpoint alone is public)."""
        with _errors("ping"):
            release = self._ls.versions.get(request_options=self._opts).release
            self._ls.users.whoami(request_options=self._opts)
        return release

    def create_user(self, email: str, password: str | None = None, first_name: str = "", last_name: str = "") -> int:
        kw = {"password": password} if password else {}
        with _errors(f"create user {email}"):
            user = self._ls.users.create(
                username=email, email=email, first_name=first_name, last_name=last_name, request_options=self._opts, **kw
            )
        return user.id

    # -- projects / label config ---------------------------------------------------
    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        with _errors(f"create project {title!r}"):
            project = self._ls.projects.create(
                title=title,
                label_config=label_config,
                description=description,
                # Predictions carry the reference-answer prefill; show them as the starting annotation.
                show_collab_predictions=True,
                request_options=self._opts,
            )
        return project.id

    def find_project(self, title: str) -> int | None:
        with _errors(f"find project {title!r}"):
            # `title` is a contains-filter server-side; match exactly here.
            for project in self._ls.projects.list(title=title, page_size=100, request_options=self._opts):
                if project.title == title:
                    return project.id
        return None

    def get_config(self, project_id: int) -> str:
        with _errors(f"get project {project_id}"):
            return self._ls.projects.get(id=project_id, request_options=self._opts).label_config

    def validate_config(self, project_id: int, label_config: str) -> None:
        """Strict check (POST /api/projects/{id}/validate): rejects configs that drop labels used by annotations.

        The PATCH alone only logs that case, so always call this first.
        """
        with _errors(f"validate config of project {project_id}"):
            self._ls.projects.validate_label_config(id=project_id, label_config=label_config, request_options=self._opts)

    def update_config(self, project_id: int, label_config: str, strict: bool = True) -> None:
        """strict=False skips the validate step: only for a change the caller has already
        checked (e.g. dropping a retired code whose annotations it remaps itself)."""
        if strict:
            self.validate_config(project_id, label_config)
        with _errors(f"update config of project {project_id}"):
            self._ls.projects.update(id=project_id, label_config=label_config, request_options=self._opts)

    # -- tasks ---------------------------------------------------------------------------
    def import_tasks(self, project_id: int, tasks: list[dict], chunk_size: int = IMPORT_CHUNK) -> list[int]:
        """Bulk import; returns LS task ids in input order.

        Not idempotent (LS does not dedupe): after LabelStudioUnavailable mid-way, reconcile with
        task_ids_by_evalgap_id() before re-importing. Each chunk is one synchronous DB transaction in Community.
        """
        ids: list[int] = []
        http = self._ls._client_wrapper.httpx_client
        for start in range(0, len(tasks), chunk_size):
            chunk = tasks[start : start + chunk_size]
            with _errors(f"import {len(chunk)} tasks into project {project_id}"):
                # A raw POST with an orjson body: the SDK's own import walks the whole payload in
                # Python to re-encode it, which costs as much as Label Studio's import itself.
                resp = http.request(
                    f"api/projects/{project_id}/import",
                    method="POST",
                    params={"return_task_ids": "true"},
                    content=orjson.dumps(chunk),
                    headers={"Content-Type": "application/json"},
                    request_options=self._slow_opts,
                )
                if resp.status_code >= 400:
                    raise ApiError(status_code=resp.status_code, body=_json_or_text(resp), headers=dict(resp.headers))
                got = list(resp.json().get("task_ids") or [])
            if len(got) != len(chunk):
                raise LabelStudioError(f"import into project {project_id}: sent {len(chunk)} tasks, LS returned {len(got)} ids")
            ids.extend(int(i) for i in got)
        return ids

    def task_ids_by_evalgap_id(self, project_id: int) -> dict[str, list[int]]:
        """{data.evalgap_id: [task ids]} for every task of the project (a list: LS may hold duplicates)."""
        return {str(k[0]): v for k, v in self.task_ids_by_key(project_id, ("evalgap_id",)).items()}

    def task_ids_by_key(self, project_id: int, fields: tuple[str, ...]) -> dict[tuple, list[int]]:
        """{(data[f] for f in fields): [task ids]} for every task of the project.

        Raw GET /api/tasks with a big page and fields=task_only, resolve_uri=false: parsing 10k tasks into
        SDK pydantic models is several times slower than reading the JSON ourselves.
        """
        out: dict[tuple, list[int]] = {}
        http = self._ls._client_wrapper.httpx_client  # the SDK's own httpx wrapper (auth headers, base url)
        page = 1
        while True:
            with _errors(f"list tasks of project {project_id}"):
                resp = http.request(
                    "api/tasks/",
                    method="GET",
                    params={
                        "project": project_id,
                        "page": page,
                        "page_size": LIST_PAGE_SIZE,
                        "fields": "task_only",
                        "resolve_uri": "false",
                    },
                    request_options=self._slow_opts,
                )
                if resp.status_code == 404 and page > 1:  # DRF: page past the end
                    break
                if resp.status_code >= 400:
                    raise ApiError(status_code=resp.status_code, body=_json_or_text(resp), headers=dict(resp.headers))
                body = resp.json()
            tasks = body.get("tasks", [])
            for task in tasks:
                data = task.get("data") or {}
                key = tuple(data.get(f) for f in fields)
                if key[-1] is not None:
                    out.setdefault(key, []).append(task["id"])
            if len(tasks) < LIST_PAGE_SIZE:
                break
            page += 1
        return out

    def delete_task(self, task_id: int) -> None:
        with _errors(f"delete task {task_id}"):
            try:
                self._ls.tasks.delete(id=str(task_id), request_options=self._opts)
            except ApiError as exc:
                if exc.status_code != 404:  # already gone is success: keeps Celery retries idempotent
                    raise

    # -- annotations / export -----------------------------------------------------------
    def export_annotated(self, project_id: int) -> list[dict]:
        """Full JSON export of tasks that have annotations (Community exports synchronously).

        Not exports.as_json(): in Community it forces download_all_tasks=True and download_resources=True.
        """
        with _errors(f"export project {project_id}"):
            raw = b"".join(
                self._ls.projects.exports.download_sync(
                    project_id, export_type="JSON", download_all_tasks=False, request_options=self._slow_opts
                )
            )
            return json.loads(raw or b"[]")

    def create_annotation(self, task_id: int, result: list[dict], completed_by: int | None = None, **extra) -> int:
        kw = dict(extra)
        if completed_by is not None:
            kw["completed_by"] = completed_by  # honoured with an admin token
        with _errors(f"create annotation on task {task_id}"):
            return self._ls.annotations.create(id=task_id, result=result, request_options=self._opts, **kw).id

    def update_annotation(self, annotation_id: int, result: list[dict], **extra) -> None:
        with _errors(f"update annotation {annotation_id}"):
            self._ls.annotations.update(id=annotation_id, result=result, request_options=self._opts, **extra)

    def delete_annotation(self, annotation_id: int) -> None:
        with _errors(f"delete annotation {annotation_id}"):
            try:
                self._ls.annotations.delete(id=annotation_id, request_options=self._opts)
            except ApiError as exc:
                if exc.status_code != 404:
                    raise

    # -- webhooks -----------------------------------------------------------------------------
    def ensure_webhook(
        self,
        project_id: int,
        url: str,
        secret_header_value: str,
        header_name: str = "X-Evalgap-Secret",
        actions: tuple[str, ...] = WEBHOOK_ACTIONS,
    ) -> int:
        """One active webhook per (project, url) with our actions and secret header; returns its id.

        LS signs nothing, so the static header is the only authenticity check on our side.
        Delivery is synchronous in the annotator's request (1 s timeout, no retry): pair it with a poll.
        """
        wanted = {
            "actions": list(actions),
            "headers": {header_name: secret_header_value},
            "is_active": True,
            "send_payload": True,
            "send_for_all_actions": False,
        }
        with _errors(f"list webhooks of project {project_id}"):
            hooks = [h for h in self._ls.webhooks.list(project=str(project_id), request_options=self._opts) if h.url == url]
        if not hooks:
            with _errors(f"create webhook for project {project_id}"):
                return self._ls.webhooks.create(url=url, project=project_id, request_options=self._opts, **wanted).id
        keep, extra = hooks[0], hooks[1:]
        for hook in extra:  # heal duplicates left by earlier races
            with _errors(f"delete duplicate webhook {hook.id}"):
                self._ls.webhooks.delete(id=hook.id, request_options=self._opts)
        current = {
            "actions": sorted(keep.actions or []),
            "headers": keep.headers or {},
            "is_active": keep.is_active,
            "send_payload": keep.send_payload,
            "send_for_all_actions": keep.send_for_all_actions,
        }
        if current != {**wanted, "actions": sorted(wanted["actions"])}:
            with _errors(f"update webhook {keep.id}"):
                self._ls.webhooks.update(id=keep.id, url=url, request_options=self._opts, **wanted)
        return keep.id


def _json_or_text(resp: httpx.Response):
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]
