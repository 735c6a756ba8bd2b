"""Integration tests for labelling.client / labelling.label_config against a REAL Label Studio.

    scripts/labelstudio.sh install && scripts/labelstudio.sh start
    eval "$(scripts/labelstudio.sh env)"
    .venv/bin/python -m pytest tests/test_labelstudio_client.py -p no:django -q

No Django DB is used. Without LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY every test FAILS (never skips):
a silently skipped integration suite would hide a broken LS setup.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labelling.client import LabelStudioClient, LabelStudioError, LabelStudioUnavailable
from labelling.label_config import build_label_config, parse_annotation_result, validate_annotation

pytestmark = pytest.mark.labelstudio
LS_URL = os.environ.get("LABEL_STUDIO_URL")
LS_KEY = os.environ.get("LABEL_STUDIO_API_KEY")

MODES = [
    {"code": "FACT", "name": "Factuality", "description": "Facts & <figures>", "parent": None, "active": True},
    {"code": "FACT.HALL", "name": "Hallucinated fact", "description": "", "parent": "FACT", "active": True},
    {"code": "FACT.OLD", "name": "Outdated", "description": "", "parent": "FACT", "active": False},
    {"code": "FMT", "name": 'Format "wrong"', "description": "", "parent": None, "active": True},
]


@pytest.fixture(scope="session")
def ls() -> LabelStudioClient:
    if not LS_URL or not LS_KEY:
        pytest.fail(
            "LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY are not set. Start the real server first:\n"
            '  scripts/labelstudio.sh install && scripts/labelstudio.sh start && eval "$(scripts/labelstudio.sh env)"',
            pytrace=False,
        )
    client = LabelStudioClient(LS_URL, LS_KEY)
    client.ping()
    return client


def _title(prefix: str) -> str:
    return f"test-{prefix}-{uuid.uuid4().hex[:10]}"


def _task(evalgap_id: str, **over) -> dict:
    data = {
        "evalgap_id": evalgap_id,
        "conversation": [{"role": "user", "content": "earlier question"}, {"role": "assistant", "content": "earlier answer"}],
        "query": f"query {evalgap_id}",
        "response": f"answer {evalgap_id}",
        "contexts_text": "[1] doc one\n[2] doc two",
        "signals_text": "groundedness=0.2 (claim X not in contexts)",
        "reference_answer_prefill": "",
    }
    data.update(over)
    return {"data": data}


def _result(verdict="incorrect", paths=(("FACT", "FACT.HALL"),), reference="better answer", notes=""):
    res = [
        {"id": "v1", "from_name": "verdict", "to_name": "response", "type": "choices", "value": {"choices": [verdict]}},
        {"id": "r1", "from_name": "reference_answer", "to_name": "response", "type": "textarea", "value": {"text": [reference]}},
    ]
    if paths:
        res.append({"id": "t1", "from_name": "failure_modes", "to_name": "response", "type": "taxonomy",
                    "value": {"taxonomy": [list(p) for p in paths]}})
    if notes:
        res.append({"id": "n1", "from_name": "notes", "to_name": "response", "type": "textarea", "value": {"text": [notes]}})
    return res


@pytest.fixture
def project(ls):
    return ls.create_project(_title("proj"), build_label_config(MODES), description="evalgap test")


# -- pure label_config -------------------------------------------------------------------------

def test_label_config_structure_and_escaping():
    xml = build_label_config(MODES)
    root = ET.fromstring(xml)  # well-formed despite &, <, > and quotes in names/descriptions
    verdict = root.find(".//Choices[@name='verdict']")
    assert [c.get("value") for c in verdict.findall("Choice")] == ["correct", "partially_correct", "incorrect", "cannot_judge"]
    assert verdict.get("choice") == "single" and verdict.get("required") == "true"
    tax = root.find(".//Taxonomy[@name='failure_modes']")
    fact = tax.find("Choice[@alias='FACT']")
    assert fact.get("value") == "Factuality" and fact.get("hint") == "Facts & <figures>"
    assert [c.get("alias") for c in fact.findall("Choice")] == ["FACT.HALL"]  # retired FACT.OLD not offered
    assert tax.find("Choice[@alias='FMT']").get("value") == 'Format "wrong"'
    assert root.find(".//TextArea[@name='reference_answer']").get("value") == "$reference_answer_prefill"
    for name in ("proposed_failure_mode", "notes"):
        assert root.find(f".//TextArea[@name='{name}']") is not None
    assert root.find(".//Paragraphs[@name='conversation']").get("value") == "$conversation"


def test_active_child_of_retired_parent_is_still_offered():
    modes = [
        {"code": "OLD", "name": "Old", "description": "", "parent": None, "active": False},
        {"code": "OLD.KEEP", "name": "Keep", "description": "", "parent": "OLD", "active": True},
    ]
    tax = ET.fromstring(build_label_config(modes)).find(".//Taxonomy")
    assert [c.get("alias") for c in tax.findall("Choice")] == ["OLD.KEEP"]


def test_parse_and_validate_annotation():
    parsed = parse_annotation_result(_result(paths=(("FACT", "FACT.HALL"), ("FMT",)), notes="n"))
    assert parsed == {"verdict": "incorrect", "failure_modes": ["FACT.HALL", "FMT"], "reference_answer": "better answer",
                      "proposed_failure_mode": "", "notes": "n"}
    validate_annotation(parsed, {"FACT", "FACT.HALL", "FMT"})
    with pytest.raises(ValueError, match="failure_modes"):
        validate_annotation(parsed, {"FACT"})
    with pytest.raises(ValueError, match="verdict"):
        validate_annotation(parse_annotation_result(_result(verdict="maybe")), {"FACT.HALL"})


# -- real Label Studio -----------------------------------------------------------------------------

def test_create_and_find_project(ls):
    title = _title("create")
    config = build_label_config(MODES)
    pid = ls.create_project(title, config)
    assert isinstance(pid, int)
    assert ls.find_project(title) == pid
    assert ls.find_project(title[:-1]) is None  # LS filters by "contains"; we want exact
    assert 'alias="FACT.HALL"' in ls.get_config(pid)


def test_invalid_config_is_a_label_studio_error(ls):
    with pytest.raises(LabelStudioError) as exc:
        ls.create_project(_title("bad"), "<View><Choices name='x' toName='nowhere'/></View>")
    assert exc.value.status_code == 400


def test_bulk_import_ids_in_order_and_lookup(ls, project):
    tasks = [_task(f"item-{i:04d}") for i in range(250)]
    ids = ls.import_tasks(project, tasks, chunk_size=100)  # 3 chunks
    assert len(ids) == 250 and len(set(ids)) == 250
    by_id = ls.task_ids_by_evalgap_id(project)
    assert {k: v for k, v in by_id.items()} == {f"item-{i:04d}": [ids[i]] for i in range(250)}
    # order check against LS itself, not just our own mapping
    for i in (0, 137, 249):
        assert ls._ls.tasks.get(id=str(ids[i])).data["evalgap_id"] == f"item-{i:04d}"


def test_import_requires_every_data_key(ls, project):
    bad = _task("no-prefill")
    del bad["data"]["reference_answer_prefill"]  # $-key referenced by the TextArea: LS rejects the import
    with pytest.raises(LabelStudioError, match="reference_answer_prefill"):
        ls.import_tasks(project, [bad])


def test_duplicates_listed_and_delete_task_idempotent(ls, project):
    a, b = ls.import_tasks(project, [_task("dup"), _task("dup")])
    assert ls.task_ids_by_evalgap_id(project) == {"dup": [a, b]}
    ls.delete_task(b)
    ls.delete_task(b)  # second delete: 404 swallowed
    assert ls.task_ids_by_evalgap_id(project) == {"dup": [a]}


def test_annotation_round_trip_through_export(ls, project):
    ids = ls.import_tasks(project, [_task("t1"), _task("t2", reference_answer_prefill="draft ref")])
    ann = ls.create_annotation(ids[1], _result(paths=(("FACT", "FACT.HALL"), ("FMT",)), notes="see doc 2"))
    exported = ls.export_annotated(project)
    assert [t["id"] for t in exported] == [ids[1]]  # only annotated tasks
    task = exported[0]
    assert task["data"]["evalgap_id"] == "t2"
    assert [a["id"] for a in task["annotations"]] == [ann]
    parsed = parse_annotation_result(task["annotations"][0]["result"])
    assert parsed["verdict"] == "incorrect"
    assert parsed["failure_modes"] == ["FACT.HALL", "FMT"]
    assert parsed["reference_answer"] == "better answer" and parsed["notes"] == "see doc 2"
    validate_annotation(parsed, {m["code"] for m in MODES})

    ls.update_annotation(ann, _result(verdict="correct", paths=()))
    parsed = parse_annotation_result(ls.export_annotated(project)[0]["annotations"][0]["result"])
    assert parsed["verdict"] == "correct" and parsed["failure_modes"] == []
    ls.delete_annotation(ann)
    ls.delete_annotation(ann)
    assert ls.export_annotated(project) == []


def test_config_update_adding_mode_keeps_annotation(ls, project):
    (tid,) = ls.import_tasks(project, [_task("keep")])
    ls.create_annotation(tid, _result())
    before = ls.export_annotated(project)[0]["annotations"][0]["result"]
    new_modes = MODES + [{"code": "FACT.NUM", "name": "Wrong number", "description": "", "parent": "FACT", "active": True}]
    ls.update_config(project, build_label_config(new_modes))
    assert 'alias="FACT.NUM"' in ls.get_config(project)
    after = ls.export_annotated(project)[0]["annotations"][0]["result"]
    assert after == before
    assert parse_annotation_result(after)["failure_modes"] == ["FACT.HALL"]


def test_strict_validation_rejects_dropping_used_code(ls, project):
    (tid,) = ls.import_tasks(project, [_task("used")])
    ls.create_annotation(tid, _result(paths=(("FACT", "FACT.HALL"),)))
    retired = [dict(m, active=False) if m["code"] == "FACT.HALL" else m for m in MODES]
    config = build_label_config(retired)
    with pytest.raises(LabelStudioError, match="FACT.HALL"):
        ls.validate_config(project, config)
    with pytest.raises(LabelStudioError, match="FACT.HALL"):
        ls.update_config(project, config)
    assert 'alias="FACT.HALL"' in ls.get_config(project)  # PATCH never sent
    # retiring an UNUSED code is fine
    ls.update_config(project, build_label_config([dict(m, active=m["code"] != "FMT") for m in MODES]))


class _Hook(BaseHTTPRequestHandler):
    received: "queue.Queue[tuple[dict, dict]]"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.put((dict(self.headers), json.loads(body or b"{}")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_webhook_delivers_annotation_created_with_secret(ls, project, hook_server):
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/labelling/webhook/"
    secret = uuid.uuid4().hex
    hook_id = ls.ensure_webhook(project, url, secret)
    assert ls.ensure_webhook(project, url, secret) == hook_id  # idempotent
    hooks = [h for h in ls._ls.webhooks.list(project=str(project)) if h.url == url]
    assert len(hooks) == 1
    assert sorted(hooks[0].actions) == ["ANNOTATIONS_DELETED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED"]

    (tid,) = ls.import_tasks(project, [_task("hooked")])
    ann = ls.create_annotation(tid, _result())
    deadline = time.monotonic() + 10
    got = None
    while time.monotonic() < deadline and got is None:
        try:
            headers, body = hook_server.received.get(timeout=0.5)
        except queue.Empty:
            continue
        if body.get("action") == "ANNOTATION_CREATED":
            got = (headers, body)
    assert got, "no ANNOTATION_CREATED webhook received"
    headers, body = got
    assert {k.lower(): v for k, v in headers.items()}["x-evalgap-secret"] == secret
    assert body["annotation"]["id"] == ann and body["task"]["data"]["evalgap_id"] == "hooked"


def test_unavailable_on_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends
    client = LabelStudioClient(f"http://127.0.0.1:{port}", "x" * 40, timeout=2)
    with pytest.raises(LabelStudioUnavailable):
        client.ping()
    with pytest.raises(LabelStudioUnavailable):
        client.import_tasks(1, [_task("nowhere")])
