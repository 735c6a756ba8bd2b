import json

from django.core.management.base import BaseCommand

from production.selectors import turns_with_signals_export


class Command(BaseCommand):
    help = "Write one JSON object per turn with its signals and their evidence (JSON Lines)."

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="file to write ('-' for stdout)")
        parser.add_argument("--source", help="only this source")

    def handle(self, *args, **opts):
        out = self.stdout if opts["output"] == "-" else open(opts["output"], "w", encoding="utf-8")
        n = 0
        try:
            for record in turns_with_signals_export(source=opts.get("source")):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
        finally:
            if out is not self.stdout:
                out.close()
        if out is not self.stdout:
            self.stdout.write(f"wrote {n} turns to {opts['output']}")
