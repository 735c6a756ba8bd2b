import json

from django.core.management.base import BaseCommand, CommandError

from testsets.selectors import TestSetError
from testsets.services.versions import version_redact


class Command(BaseCommand):
    help = ("Freeze a redacted successor of a version frozen before test sets stored redacted text (such a "
            "version holds raw text and only admins read it): the next version, its items redacted and "
            "pseudonymised as Label Studio shows them, with a note saying why. Running it again changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="test set name")
        parser.add_argument("version", type=int, help="N of the version vN to redact")
        parser.add_argument("--note", default="", help="added to the successor's note")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            version, made = version_redact(name=opts["name"], number=opts["version"], note=opts["note"])
        except TestSetError as e:
            raise CommandError(str(e)) from None
        summary = {"testset": opts["name"], "from": opts["version"], "version": version.number,
                   "items": version.item_count, "sha256": version.sha256, "created": made}
        self.stdout.write(json.dumps(summary) if opts["json"] else
                          f"{opts['name']} v{version.number}: redacted successor of v{opts['version']}, "
                          f"{version.item_count} items, sha256 {version.sha256}"
                          + ("" if made else " (made before; nothing changed)"))
