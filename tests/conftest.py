import os
from contextlib import contextmanager

import pytest


@contextmanager
def owner_cursor():
    """A cursor for a test's own DDL (a trigger it adds and drops). Under make test the tests connect as
    the app role, which may not create functions or triggers: this cursor is the owner's, on a
    connection of its own in autocommit (what it creates is visible to the test's transaction).
    Elsewhere (SQLite) it is the test's own connection."""
    from django.db import connection

    owner_file = os.environ.get("DATABASE_MIGRATE_URL_FILE")
    if connection.vendor != "postgresql" or not owner_file:
        with connection.cursor() as c:
            yield c
        return
    import environ
    import psycopg2

    cfg = environ.Env.db_url_config(open(owner_file).read().strip())
    conn = psycopg2.connect(dbname=cfg["NAME"], user=cfg["USER"], password=cfg["PASSWORD"], host=cfg["HOST"],
                            port=cfg["PORT"])
    conn.autocommit = True
    try:
        with conn.cursor() as c:
            yield c
    finally:
        conn.close()

if os.environ.get("EVALGAP_TEST_EXISTING_DB") == "1":

    @pytest.fixture(scope="session")
    def django_db_setup():
        """Under `make test` the database is the real Postgres the Celery worker also uses, migrated
        by scripts/test.sh: tests share it with the worker instead of a private test_ copy."""

    def _flush_as_owner():
        """Tests connect as the app role (DML only, as in production), which may not TRUNCATE. The flush
        that ends each transactional test is housekeeping, not the app: it runs as the owner role."""
        import time

        import environ
        from django.core.management.base import CommandError
        from django.core.management.commands import flush

        owner_file = os.environ.get("DATABASE_MIGRATE_URL_FILE")
        if not owner_file:
            return
        owner = environ.Env.db_url_config(open(owner_file).read().strip())
        handle = flush.Command.handle

        def handle_as_owner(self, **options):
            from django.db import connections

            conn = connections[options.get("database") or "default"]
            saved = {k: conn.settings_dict[k] for k in ("USER", "PASSWORD")}
            conn.close()
            conn.settings_dict.update(USER=owner["USER"], PASSWORD=owner["PASSWORD"])
            try:
                # The worker may still be finishing a task a test left behind (a chained detection): its
                # transaction and TRUNCATE can deadlock, and PostgreSQL then cancels one of them. The
                # flush is housekeeping, so it waits and tries again rather than leave rows for the
                # next test.
                for attempt in range(5):
                    try:
                        return handle(self, **options)
                    except CommandError:
                        if attempt == 4:
                            raise
                        conn.close()
                        time.sleep(1 + attempt)
            finally:
                conn.close()
                conn.settings_dict.update(saved)

        flush.Command.handle = handle_as_owner

    _flush_as_owner()


@pytest.fixture(autouse=True)
def _no_chained_detection(request, settings):
    """An ingest in the test process chains signal detection onto the real worker, which then runs
    past the test's end and races the flush. Tests that want it say so (detect_after_ingest); the
    worker's own chaining (ingest jobs it runs) is its setting, not this one."""
    if not request.node.get_closest_marker("detect_after_ingest"):
        settings.SIGNALS_DETECT_AFTER_INGEST = False


@pytest.fixture(autouse=True)
def _ledger_caps_off(settings):
    """The spend ledger's daily caps are off and every source may mirror, unless a test sets them
    (tests/test_spend_ledger.py does): the fake server's prices are made up, and a cap of $10 would
    stop tests that are about something else."""
    for purpose in ("REPLAY", "JUDGE", "GRADER", "GENERATION", "CALIBRATION", "AUDIT"):
        setattr(settings, f"{purpose}_MAX_USD_PER_DAY", None)
    settings.SHADOW_MIRROR_SOURCES = ["*"]
    settings.SHADOW_MIRROR_MAX_PER_RELEASE_PER_DAY = None


def user_with_role(username: str, role: str, *, password: str | None = None):
    """A user holding one of core.roles.ROLES (what `manage.py user_add` makes)."""
    from django.contrib.auth.models import User

    from core.roles import user_role_set

    user = User.objects.create_user(username, password=password)
    user_role_set(user=user, role=role)
    return user


@pytest.fixture
def api_user(db):
    """An engineer with the admin role and an API token."""
    from rest_framework.authtoken.models import Token

    user = user_with_role("engineer", "admin", password="pw-engineer-1")
    token = Token.objects.create(user=user)
    return user, token.key


@pytest.fixture
def api(api_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_user[1]}")
    return client


# --- personas: one user per kind of person the permission tests speak of, each holding its role
# (core.roles), as `manage.py user_add NAME --role ROLE` makes them.

@pytest.fixture
def admin(db):
    """Runs the installation: role admin (a superuser)."""
    return user_with_role("alice-admin", "admin", password="pw-alice-admin-1")


@pytest.fixture
def taxonomy_admin(db):
    """Governs the failure-mode taxonomy: role taxonomy_admin."""
    return user_with_role("tara-taxonomy", "taxonomy_admin", password="pw-tara-taxonomy-1")


@pytest.fixture
def annotator(db):
    """Judges answers in Label Studio: role annotator (in evalgap, the taxonomy only)."""
    return user_with_role("bob-annotator", "annotator", password="pw-bob-annotator-1")


@pytest.fixture
def viewer(db):
    """Reads dashboards, redacted turns and frozen exports: role viewer."""
    return user_with_role("vera-viewer", "viewer", password="pw-vera-viewer-1")


@pytest.fixture
def ingest_service(db):
    """The log shipper's service account (an API token): role ingest."""
    from rest_framework.authtoken.models import Token

    user = user_with_role("ingest-service", "ingest")
    Token.objects.create(user=user)
    return user


@pytest.fixture
def outsider():
    """Nobody signed in."""
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


# The second pass of make test runs on SQLite (what `make demo` and first-time users run) only the
# tests whose code takes a path of its own there, or leans on what the two databases do differently:
# a `connection.vendor` branch (jobs' claims, ingest's COPY writer, signals' store, push, the rollup,
# frozen versions' guard), date/JSON functions and aggregates (rates, reports, pages, exports), and the
# demo's own path (ingest, detect, select, promote, export). PostgreSQL runs everything.
SQLITE_MODULES = {
    "test_jobs", "test_exactly_once", "test_ingest", "test_ingest_poison", "test_signals", "test_labelling",
    "test_testsets", "test_exports", "test_evaluation_correlation", "test_releases", "test_shadow_report",
    "test_dashboard", "test_query_counts", "test_gate", "test_otlp", "test_one_verdict",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in SQLITE_MODULES:
            item.add_marker(pytest.mark.sqlite)
