"""Deployment settings, run as docker-compose.yml runs them: `check --deploy` is clean, no secret key
means no start, HTTPS redirects spare Label Studio's webhook, and the app's database role (the one
these tests connect as under make test) cannot switch off or bypass the frozen-set guards."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.db import DatabaseError, connection, transaction

REPO = Path(__file__).resolve().parent.parent


def compose_app_env(tmp_path: Path) -> dict:
    """The environment compose gives web/worker/beat, with each secret file replaced by a local one."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {}
    for key, value in compose["services"]["web"]["environment"].items():
        value = str(value)
        if key.endswith("_FILE"):
            path = tmp_path / key.lower()
            path.write_text(secrets.token_urlsafe(64) if "SECRET" in key else
                            "sqlite:///" + str(tmp_path / "db.sqlite3") if key == "DATABASE_URL_FILE" else "x")
            value = str(path)
        # ${VAR:?message} / ${VAR:-default}: what an operator would set
        env[key] = value.replace("${EVALGAP_HOST:?set EVALGAP_HOST}", "evalgap.example.com").replace(
            "${EVALGAP_HOST}", "evalgap.example.com").replace("${OPENAI_BASE_URL:-}", "")
    return env


def run_django(code: str, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "LABEL_STUDIO_", "EVALGAP_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**base, "DJANGO_SETTINGS_MODULE": "evalgap.settings", **env})


def test_check_deploy_with_the_compose_settings_gives_no_warning(tmp_path):
    env = compose_app_env(tmp_path)
    assert env["DJANGO_HTTPS"] == "true"
    out = run_django("import sys; from django.core.management import execute_from_command_line as x; "
                     "x(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])", env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout


def test_without_a_secret_key_outside_debug_the_app_refuses_to_start(tmp_path):
    env = {k: v for k, v in compose_app_env(tmp_path).items() if not k.startswith("DJANGO_SECRET_KEY")}
    out = run_django("import django; django.setup()", env)
    assert out.returncode != 0 and "DJANGO_SECRET_KEY" in out.stderr and "refusing to start" in out.stderr
    assert run_django("import django; django.setup()", {**env, "DJANGO_DEBUG": "true"}).returncode == 0


def test_https_redirects_everything_but_the_webhook_and_the_health_check(tmp_path):
    env = compose_app_env(tmp_path)
    out = run_django(
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='web')\n"
        "print(c.get('/').status_code, c.post('/api/labelling/webhook/', data='{}', content_type='application/json')"
        ".status_code, c.get('/healthz/').status_code, c.get('/', secure=True).status_code)\n", env)
    assert out.returncode == 0, out.stderr
    page, webhook, health, page_over_https = map(int, out.stdout.split()[-4:])
    # the page goes to https; Label Studio's webhook is answered (401: no secret header) over plain HTTP
    assert (page, webhook, health, page_over_https) == (301, 401, 200, 302)


def test_x_forwarded_proto_is_believed_behind_the_proxy_only(tmp_path):
    """Compose's web port is on loopback behind the proxy (DJANGO_BEHIND_PROXY): the header counts.
    Anywhere else a client could send it, so it is ignored and the page still goes to https."""
    code = ("import django; django.setup()\n"
            "from django.test import Client\n"
            "print(Client(HTTP_HOST='web').get('/healthz/', HTTP_X_FORWARDED_PROTO='https').status_code,"
            " Client(HTTP_HOST='web').get('/', HTTP_X_FORWARDED_PROTO='https').status_code)\n")
    env = compose_app_env(tmp_path)
    out = run_django(code, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "302"  # believed: served as https, the login redirect
    env.pop("DJANGO_BEHIND_PROXY")
    out = run_django(code, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "301"  # ignored: redirected to https


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="database roles: make test")


@postgres_only
@pytest.mark.django_db
@pytest.mark.parametrize("sql", [
    "ALTER TABLE testsets_testitem DISABLE TRIGGER ALL",
    "ALTER TABLE testsets_testitem DISABLE TRIGGER testsets_item_frozen_guard",
    "TRUNCATE testsets_testitem CASCADE",
    "DROP TRIGGER testsets_item_frozen_guard ON testsets_testitem",
    "ALTER TABLE testsets_testsetversion DISABLE TRIGGER ALL",
    "DROP TABLE testsets_testitem CASCADE",
    "CREATE TABLE sneaky (id int)",
    "SET session_replication_role = replica",  # would skip every trigger
])
def test_the_app_role_cannot_switch_off_or_bypass_the_frozen_set_guards(sql):
    with connection.cursor() as c:
        c.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = c.fetchone()
        c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'testsets_testitem'")
        owner = c.fetchone()[0]
    assert not superuser and owner != user, f"tests must connect as the app role (they run as {user})"
    with pytest.raises(DatabaseError, match="must be owner|permission denied"), transaction.atomic():
        with connection.cursor() as c:
            c.execute(sql)


@postgres_only
@pytest.mark.django_db
def test_the_app_role_reads_and_writes_rows():
    from production.models import Source

    Source.objects.create(name="rows-only")
    assert Source.objects.filter(name="rows-only").exists()
