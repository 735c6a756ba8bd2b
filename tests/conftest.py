import os

import pytest

if os.environ.get("EVALGAP_TEST_EXISTING_DB") == "1":

    @pytest.fixture(scope="session")
    def django_db_setup():
        """Under `make test` the database is the real Postgres the Celery worker also uses, migrated
        by scripts/test.sh: tests share it with the worker instead of a private test_ copy."""


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
