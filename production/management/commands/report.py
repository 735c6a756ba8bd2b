import json

from django.core.management.base import BaseCommand

from production import selectors


class Command(BaseCommand):
    help = "Report what evalgap holds: turns, sessions, sources, models, events by type, rejects."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        report = selectors.holdings_report()
        if opts["json"]:
            self.stdout.write(json.dumps(report, default=str))
            return
        w = self.stdout.write
        w(f"turns     {report['turns']:>8}")
        w(f"sessions  {report['sessions']:>8}")
        w("sources   " + ", ".join(f"{s['name']} ({s['turn_count']})" for s in report["sources"]))
        w("models    " + ", ".join(f"{m['model'] or '(none)'} ({m['turns']})" for m in report["models"]))
        events = report["events_by_type"]
        w("events    " + (", ".join(f"{k} {v}" for k, v in events.items()) or "none")
          + f"  ({report['events_unattached']} waiting for their turn)")
        w(f"rejected  {report['rejected']:>8}")
        for r in report["rejected_sample"]:
            w(f"          {r['origin']}:{r['line_no']}: {r['reason']}")
