import os

import pytest

if os.environ.get("EVALGAP_TEST_EXISTING_DB") == "1":

    @pytest.fixture(scope="session")
    def django_db_setup():
        """Under `make test` the database is the real Postgres the Celery worker also uses, migrated
        by scripts/test.sh: tests share it with the worker instead of a private test_ copy."""


@pytest.fixture
def api_user(db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user("engineer", password="pw-engineer-1")
    token = Token.objects.create(user=user)
    return user, token.key


@pytest.fixture
def api(api_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_user[1]}")
    return client


# --- personas: one user per kind of person the permission tests speak of. Plain users here; the
# roles they hold (core.roles) are attached where those roles are defined.

def _persona(username: str, *perms: str):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, password=f"pw-{username}-1")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def admin(db):
    """Runs the installation: a superuser."""
    from django.contrib.auth.models import User

    return User.objects.create_superuser("alice-admin", password="pw-alice-admin-1")


@pytest.fixture
def taxonomy_admin(db):
    """Governs the failure-mode taxonomy."""
    return _persona("tara-taxonomy", "taxonomy.govern_taxonomy")


@pytest.fixture
def annotator(db):
    """Judges answers in Label Studio; reads evalgap's pages."""
    return _persona("bob-annotator")


@pytest.fixture
def viewer(db):
    """Reads dashboards and exports."""
    return _persona("vera-viewer")


@pytest.fixture
def ingest_service(db):
    """The log shipper's service account (an API token)."""
    from rest_framework.authtoken.models import Token

    user = _persona("ingest-service")
    Token.objects.create(user=user)
    return user


@pytest.fixture
def outsider():
    """Nobody signed in."""
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()
