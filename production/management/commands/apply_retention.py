import json

from django.core.management.base import BaseCommand

from production.services.privacy import retention_apply


class Command(BaseCommand):
    help = ("Drop the raw text of turns older than RAW_RETENTION_DAYS (and of their events and mirrored answers); "
            "signals, labels and rates stay. Empty RAW_RETENTION_DAYS: nothing is dropped. Idempotent; audited.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        result = retention_apply()
        if result["cutoff"] is None:
            line = "RAW_RETENTION_DAYS is empty: raw text is kept forever, nothing dropped"
        else:
            line = (f"raw text before {result['cutoff']} dropped: {result['turns']} turns, {result['events']} events, "
                    f"{result['mirrored_answers']} mirrored answers")
        self.stdout.write(json.dumps(result) if opts["json"] else line)
