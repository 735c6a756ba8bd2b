"""Releases: the command, the API, and which turns a release served."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from production.services.ingest import source_get_or_create, turns_ingest_body
from releases.models import Release
from releases.selectors import release_turns

pytestmark = pytest.mark.django_db


def test_release_add_creates_a_release_and_prints_json(tmp_path):
    prompt = tmp_path / "system.txt"
    prompt.write_text("You are a careful support assistant.")
    out = io.StringIO()
    call_command("release_add", "bot-2026-11", "--model", "gpt-x", "--prompt-version", "p7", "--base-url",
                 "http://127.0.0.1:9/v1", "--api-key-env", "CANDIDATE_KEY", "--system-prompt-file", str(prompt),
                 "--json", stdout=out)
    line = json.loads(out.getvalue())
    assert line["name"] == "bot-2026-11" and line["created"] is True and line["model"] == "gpt-x"
    r = Release.objects.get(name="bot-2026-11")
    assert (r.prompt_version, r.api_key_env, r.system_prompt) == ("p7", "CANDIDATE_KEY", "You are a careful support assistant.")


def test_release_add_refuses_a_duplicate_and_a_bad_key_variable():
    call_command("release_add", "r1", "--model", "m", stdout=io.StringIO())
    with pytest.raises(CommandError, match="name: a release named 'r1' exists already"):
        call_command("release_add", "r1", "--model", "m", stdout=io.StringIO())
    with pytest.raises(CommandError, match="api_key_env"):
        call_command("release_add", "r2", "--model", "m", "--api-key-env", "not a var", stdout=io.StringIO())
    assert list(Release.objects.values_list("name", flat=True)) == ["r1"]


def test_a_turn_belongs_to_the_release_it_names_else_to_the_one_whose_model_served_it():
    source = source_get_or_create(name="rel-src")
    lines = [
        {"id": "t1", "model": "m-a"},                                   # by model -> A
        {"id": "t2", "model": "m-a", "metadata": {"release": "B"}},     # names B -> B, not A
        {"id": "t3", "model": "m-b", "metadata": {"release": "A"}},     # names A -> A
        {"id": "t4", "model": "m-c"},                                   # nobody's
    ]
    body = b"".join(json.dumps({"session_id": "s", "timestamp": f"2026-11-0{i + 1}T10:00:00Z", "query": "q",
                                "response": "r", **line}).encode() + b"\n" for i, line in enumerate(lines))
    turns_ingest_body(source=source, body=body)
    a = Release.objects.create(name="A", model="m-a")
    b = Release.objects.create(name="B", model="m-b")
    assert sorted(release_turns(a).values_list("external_id", flat=True)) == ["t1", "t3"]
    assert sorted(release_turns(b).values_list("external_id", flat=True)) == ["t2"]


def test_the_api_lists_and_adds_releases(api):
    response = api.post("/api/releases/", {"name": "api-rel", "model": "m", "shadow_enabled": True}, format="json")
    assert response.status_code == 201, response.content
    assert Release.objects.get(name="api-rel").shadow_enabled is True
    assert api.post("/api/releases/", {"name": "api-rel", "model": "m"}, format="json").status_code == 400
    listing = api.get("/api/releases/").json()
    assert [r["name"] for r in listing["results"]] == ["api-rel"]
    assert api.get("/api/releases/api-rel/").json()["model"] == "m"


def test_a_release_key_is_read_by_settings_at_start_and_never_one_of_the_projects_secrets(tmp_path, settings):
    import os
    import subprocess
    import sys

    from llm.client import endpoint_for

    # settings read the variables a release may name once, at start: names ending in _KEY (or their
    # _FILE), and not this project's own secrets
    (tmp_path / "key").write_text("sk-from-file\n")
    env = {**os.environ, "CANDIDATE_KEY": "sk-candidate", "OTHER_KEY_FILE": str(tmp_path / "key"),
           "DJANGO_SECRET_KEY": "dj-secret", "LABEL_STUDIO_API_KEY": "ls-token", "CANDIDATE_TOKEN": "not-a-key"}
    out = subprocess.run([sys.executable, "-c", "import django, json; django.setup(); from django.conf import "
                          "settings; print(json.dumps(settings.RELEASE_API_KEYS))"], env=env, capture_output=True,
                         text=True, check=True).stdout
    keys = json.loads(out.strip().splitlines()[-1])
    assert keys["CANDIDATE_KEY"] == "sk-candidate" and keys["OTHER_KEY"] == "sk-from-file"
    assert not {"DJANGO_SECRET_KEY", "LABEL_STUDIO_API_KEY", "PII_PSEUDONYM_KEY", "CANDIDATE_TOKEN"} & set(keys)

    # and the client takes a release's key from there, never from the environment at call time
    settings.RELEASE_API_KEYS = {"CANDIDATE_KEY": "sk-candidate"}
    settings.OPENAI_API_KEY = "sk-default"
    assert endpoint_for(role="SHADOW", base_url="http://127.0.0.1:9/v1", api_key_env="CANDIDATE_KEY",
                        model="m").api_key == "sk-candidate"
    # a key settings do not hold (the project's own secrets are never among them) is no key: a base URL
    # of the release's own never receives the shared OPENAI_API_KEY
    refused = endpoint_for(role="SHADOW", base_url="http://127.0.0.1:9/v1", api_key_env="DJANGO_SECRET_KEY", model="m")
    assert refused.api_key == "" and refused.missing() == ["DJANGO_SECRET_KEY"]


def test_a_release_without_its_own_key_never_gets_the_shared_key_at_its_own_base_url(settings):
    from llm.client import LLMNotConfigured, endpoint_for, get_client

    settings.RELEASE_API_KEYS = {"CANDIDATE_KEY": "sk-candidate"}
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "https://api.openai.example/v1", "sk-shared"
    own = endpoint_for(role="release:r", base_url="https://evil.example/v1", api_key_env="", model="m")
    assert own.api_key == "" and "api_key_env of release:r" in own.missing()[0]
    with pytest.raises(LLMNotConfigured, match="api_key_env of release:r"):
        get_client(own)
    missing_var = endpoint_for(role="release:r", base_url="https://evil.example/v1", api_key_env="NOT_SET_KEY", model="m")
    assert missing_var.api_key == "" and missing_var.missing() == ["NOT_SET_KEY"]
    # The shared URL (or none: the shared one) keeps the shared key; a named key still wins.
    assert endpoint_for(role="release:r", base_url="", api_key_env="", model="m").api_key == "sk-shared"
    assert endpoint_for(role="release:r", base_url="https://api.openai.example/v1/", api_key_env="",
                        model="m").api_key == "sk-shared"
    assert endpoint_for(role="release:r", base_url="https://evil.example/v1", api_key_env="CANDIDATE_KEY",
                        model="m").api_key == "sk-candidate"
