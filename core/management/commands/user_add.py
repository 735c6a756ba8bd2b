import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.roles import ROLES, user_role_set


class Command(BaseCommand):
    help = ("Create a user (or change an existing one's role) with one of the roles: "
            f"{', '.join(ROLES)}. --token prints the user's API token (created if missing): the way to "
            "give a service (role ingest) its credentials. A new user has no password; set one with "
            "`manage.py changepassword USERNAME` for the web UI.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=list(ROLES), help="the user's one role")
        parser.add_argument("--token", action="store_true", help="create (or show) the user's API token")
        parser.add_argument("--json", action="store_true", help='print {"user", "role", "token"?} as JSON')

    def handle(self, *args, **opts):
        from rest_framework.authtoken.models import Token

        username, role = opts["username"].strip(), opts["role"]
        if not username:
            raise CommandError("username: must not be empty")
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            user_role_set(user=user, role=role)
            token = Token.objects.get_or_create(user=user)[0].key if opts["token"] else None
        out = {"user": user.get_username(), "role": role}
        if token is not None:
            out["token"] = token
        if opts["json"]:
            self.stdout.write(json.dumps(out))
        else:
            self.stdout.write(f"{'created' if created else 'updated'} {username}: role {role}"
                              + (f", token {token}" if token else ""))
