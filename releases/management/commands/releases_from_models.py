import json

from django.core.management.base import BaseCommand, CommandError

from releases.services import ReleaseError, releases_from_models


class Command(BaseCommand):
    help = ("Make one release per model name found in the production log (name = model), keeping releases that "
            "exist: a log that names no release then has one per system that served it.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            made = releases_from_models(user="releases_from_models")
        except ReleaseError as e:
            raise CommandError(str(e)) from None
        result = {"releases": [r.name for r, _ in made], "created": sum(c for _, c in made)}
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for r, created in made:
                self.stdout.write(f"  {'created' if created else 'exists '} {r.name} (model {r.model})")
            self.stdout.write(f"{result['created']} releases created, {len(made) - result['created']} existed")
