import json

from django.core.management.base import BaseCommand, CommandError

from production.services.privacy import subject_erase


class Command(BaseCommand):
    help = ("Erase a production user: the raw text of their turns, events and mirrored answers, ids carrying "
            "personal data, their Label Studio tasks, shadow pairs' answers; records a tombstone (a keyed hash, "
            "no raw identity) and an audit row. Running it again changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--user-id", required=True, help="the production user id, as the log sent it")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            result = subject_erase(user_id=opts["user_id"])
        except ValueError as e:
            raise CommandError(str(e)) from None
        counts = ", ".join(f"{k} {v}" for k, v in result.items() if k != "subject_sha256")
        self.stdout.write(json.dumps(result) if opts["json"] else
                          f"erased subject {result['subject_sha256'][:12]}…: {counts}")
