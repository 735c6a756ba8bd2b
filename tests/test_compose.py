"""docker-compose.yml, parsed (no Docker engine here): services, health, order, secrets, networks."""
import ipaddress
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP = ("web", "worker", "beat")
# Label Studio 1.23.2's own list (label_studio/core/utils/io.py, default_banned_subnets).
LS_DEFAULT_BANNED = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28",
    "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8"]


def test_the_services_and_their_images():
    assert set(SERVICES) == {"migrate", "web", "worker", "beat", "postgres", "redis", "label-studio"}
    for name in ("migrate", *APP):
        assert SERVICES[name]["build"] == "."
        env = SERVICES[name]["environment"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert "celery -A evalgap worker" in SERVICES["worker"]["command"]
    assert "django_celery_beat" in SERVICES["beat"]["command"]
    assert SERVICES["web"]["command"].startswith("gunicorn ") and SERVICES["web"]["ports"] == ["127.0.0.1:8000:8000"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"


def test_every_long_running_service_has_a_healthcheck():
    for name, svc in SERVICES.items():
        if name == "migrate":
            assert svc["restart"] == "no" and "healthcheck" not in svc
            continue
        check = svc["healthcheck"]
        assert check["test"] and check["interval"] and check["retries"], name
    assert "/healthz/" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "inspect ping" in SERVICES["worker"]["healthcheck"]["test"][1]


def test_migrations_run_once_before_web_worker_and_beat():
    migrate = SERVICES["migrate"]
    assert migrate["command"] == "python manage.py migrate --noinput"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP:
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
        assert deps["postgres"] == {"condition": "service_healthy"} and deps["redis"] == {"condition": "service_healthy"}
        assert "migrate" not in SERVICES[name]["command"]


def test_the_app_connects_as_a_role_without_the_tables_and_migrate_as_their_owner():
    for name in APP:
        assert SERVICES[name]["environment"]["DATABASE_URL_FILE"] == "/run/secrets/database_url"
        assert "database_migrate_url" not in SERVICES[name]["secrets"]
    assert SERVICES["migrate"]["environment"]["DATABASE_URL_FILE"] == "/run/secrets/database_migrate_url"
    mounts = SERVICES["postgres"]["volumes"]
    assert "./deploy/postgres/initdb.sh:/docker-entrypoint-initdb.d/10-evalgap.sh:ro" in mounts
    assert "./deploy/postgres/roles.sql:/etc/evalgap/roles.sql:ro" in mounts
    sql = (REPO / "deploy" / "postgres" / "roles.sql").read_text()
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :\"app\"" in sql
    assert "TRUNCATE" not in sql.split("--")[-1] and "ALL PRIVILEGES" not in sql
    # the test services run the very same SQL
    assert "deploy/postgres/roles.sql" in (REPO / "scripts" / "services.sh").read_text()


def test_secrets_are_files_and_nothing_secret_is_in_the_file_or_the_environment():
    declared = COMPOSE["secrets"]
    for name, svc in SERVICES.items():
        for secret in svc.get("secrets", []):
            assert secret in declared and declared[secret]["file"].startswith("./secrets/"), (name, secret)
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY|DATABASE_URL", key) and not key.startswith(
                    ("USE_DEFAULT", "USER_ADDITIONAL", "SSRF", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN")):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    ls_secrets = (REPO / "deploy" / "labelstudio" / "secrets.sh").read_text()
    for var in ("POSTGRE_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN", "SECRET_KEY"):
        assert f'export {var}="$(cat /run/secrets/' in ls_secrets
    assert "secrets/" in (REPO / ".gitignore").read_text() and "secrets/" in (REPO / ".dockerignore").read_text()


def test_media_and_data_live_on_volumes():
    declared = set(COMPOSE["volumes"])
    for name in ("migrate", *APP):
        assert "media:/media" in SERVICES[name]["volumes"]
        assert SERVICES[name]["environment"]["EVALGAP_MEDIA_ROOT"] == "/media"
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "redisdata:/data" in SERVICES["redis"]["volumes"] and "--appendonly yes" in SERVICES["redis"]["command"]
    assert "lsdata:/label-studio/data" in SERVICES["label-studio"]["volumes"]
    for svc in SERVICES.values():
        for vol in svc.get("volumes", []):
            name = vol.split(":")[0]
            if not name.startswith((".", "/")):
                assert name in declared


def test_label_studio_runs_on_postgres_and_may_call_the_web_services_webhook_only():
    ls = SERVICES["label-studio"]["environment"]
    assert ls["DJANGO_DB"] == "default" and ls["POSTGRE_HOST"] == "postgres" and ls["POSTGRE_NAME"] == "labelstudio"
    assert SERVICES["label-studio"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    # the webhook URL evalgap registers is the web service, by its name on the deployment's network
    assert SERVICES["web"]["environment"]["EVALGAP_PUBLIC_URL"] == "http://web:8000"
    assert "web" in SERVICES["web"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(",")
    ours = ipaddress.ip_network(COMPOSE["networks"]["evalgap"]["ipam"]["config"][0]["subnet"])
    assert all(SERVICES[s]["networks"] == ["evalgap"] for s in SERVICES)
    assert ls["SSRF_PROTECTION_ENABLED"] == "true" and ls["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = [ipaddress.ip_network(n) for n in ls["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")]
    # our own network is reachable ...
    assert not any(n.version == ours.version and n.overlaps(ours) for n in banned)
    # ... and every address Label Studio bans by default, outside it, is still banned
    for default in map(ipaddress.ip_network, LS_DEFAULT_BANNED):
        rest = list(default.address_exclude(ours)) if default.version == ours.version and ours.subnet_of(default) \
            else [default]
        for part in rest:
            assert any(part.version == b.version and part.subnet_of(b) for b in banned), part
    assert any(ipaddress.ip_address("169.254.169.254") in n for n in banned)  # cloud metadata


def _pins(name: str) -> set[str]:
    lines = (REPO / name).read_text().splitlines()
    return {line.split("==")[0].strip().lower() for line in lines if "==" in line and not line.startswith("#")}


def test_the_runtime_image_carries_no_build_only_package():
    build_only = {"torch", "transformers", "sentence-transformers", "onnx"}
    assert not build_only & _pins("requirements.txt")
    assert build_only <= _pins("requirements-build.txt")
    assert "-r requirements.txt" in (REPO / "requirements-build.txt").read_text()
    # the Dockerfile builds the encoder's graph in a first stage; the image is the last stage, which
    # installs requirements.txt alone and copies the built graph
    stages = (REPO / "Dockerfile").read_text().split("\nFROM ")[1:]  # [0]: the comments before the first
    assert len(stages) == 2 and "requirements-build.txt" in stages[0] and "rephrase.encoder build" in stages[0]
    runtime = stages[1]
    assert "requirements-build" not in runtime and "-r requirements.txt" in runtime
    assert "COPY --from=encoder" in runtime  # where it goes: tests/test_dockerfile.py runs the build step
    # and make's venv step installs the build packages, so a fresh clone still builds the encoder
    assert "scripts/venv.sh" in (REPO / "Makefile").read_text()
    venv = (REPO / "scripts" / "venv.sh").read_text()
    assert "-r requirements-build.txt" in venv and "ensure_built()" in venv


def test_published_ports_are_on_loopback_only_and_the_proxy_header_is_trusted_only_there():
    """Web and Label Studio speak plain HTTP: only a proxy on the host reaches them, and Django
    believes X-Forwarded-Proto because nothing but that proxy can send it."""
    published = {name: svc["ports"] for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"web": ["127.0.0.1:8000:8000"], "label-studio": ["127.0.0.1:8080:8080"]}
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    env = SERVICES["web"]["environment"]
    assert env["DJANGO_HTTPS"] == "true" and env["DJANGO_BEHIND_PROXY"] == "true"
    assert "X-Forwarded-Proto" in (REPO / "docker-compose.yml").read_text().split("name: evalgap")[0]
