from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_compose_file_describes_the_production_deployment():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"web", "worker", "beat", "postgres", "redis", "label-studio"}
    for name in ("web", "worker", "beat"):
        svc = services[name]
        assert svc["build"] == "."
        env = svc["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
        assert set(svc["depends_on"]) == {"postgres", "redis"}
    assert "celery -A evalgap worker" in services["worker"]["command"]
    assert "django_celery_beat" in services["beat"]["command"]
    assert services["web"]["ports"] == ["8000:8000"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    # every named volume a service mounts is declared
    declared = set(compose["volumes"])
    for svc in services.values():
        for vol in svc.get("volumes", []):
            name = vol.split(":")[0]
            if not name.startswith((".", "/")):
                assert name in declared
    # no secret is written into the file itself
    text = (REPO / "docker-compose.yml").read_text()
    assert "${DJANGO_SECRET_KEY:?" in text and "${POSTGRES_PASSWORD:?" in text
    assert (REPO / "Dockerfile").exists()


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
    assert "COPY --from=encoder" in runtime and "EVALGAP_ENCODER_DIR" in runtime
    # and make installs the build packages, so a fresh clone still builds the encoder
    makefile = (REPO / "Makefile").read_text()
    assert "-r requirements-build.txt" in makefile and "rephrase.encoder build" in makefile
