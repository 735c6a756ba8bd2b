import json

from django.core.management.base import BaseCommand, CommandError

from testsets.selectors import TestSetError
from testsets.services.versions import testset_freeze


class Command(BaseCommand):
    help = "Freeze the test set's draft as its next version vN: immutable, with a sha256 over its items."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--note", default="")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            version = testset_freeze(name=opts["name"], note=opts["note"])
        except TestSetError as e:
            raise CommandError(str(e)) from None
        summary = {"testset": opts["name"], "version": version.number, "items": version.item_count,
                   "sha256": version.sha256}
        self.stdout.write(json.dumps(summary) if opts["json"] else
                          f"{opts['name']} v{version.number}: {version.item_count} items, sha256 {version.sha256}")
