import json

from django.core.management.base import BaseCommand, CommandError

from production.services.browser_events import publishable_key_create


class Command(BaseCommand):
    help = ("Create a publishable key for evalgap-events.js: it can only add browser events (copy, thumbs, "
            "leaving the page) to turns of SOURCE, from the given origins, at most --rate a minute. It reads "
            "nothing, so a web page may carry it in the open.")

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True, help="the production source its events belong to")
        parser.add_argument("--origin", action="append", default=[], required=True,
                            help="an origin the web app is served from, e.g. https://app.example.com (repeatable)")
        parser.add_argument("--name", default="", help="what the key is for")
        parser.add_argument("--rate", type=int, default=600, help="events a minute (default 600)")
        parser.add_argument("--json", action="store_true", help="end with one JSON summary line")

    def handle(self, *args, **o):
        try:
            key = publishable_key_create(source_name=o["source"], origins=o["origin"], name=o["name"],
                                         rate_per_minute=o["rate"])
        except ValueError as e:
            raise CommandError(str(e)) from None
        out = {"key": key.key, "source": key.source.name, "origins": key.allowed_origins,
               "rate_per_minute": key.rate_per_minute}
        self.stdout.write(json.dumps(out) if o["json"] else
                          f"publishable key {key.key} for source {key.source.name}, origins "
                          f"{', '.join(key.allowed_origins)}, {key.rate_per_minute} events a minute")
