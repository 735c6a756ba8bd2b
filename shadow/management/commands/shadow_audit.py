import json

from django.core.management.base import BaseCommand, CommandError

from labelling.client import LabelStudioError, LabelStudioUnavailable
from shadow import selectors
from shadow.services import audit


class Command(BaseCommand):
    help = ("Send a sample of judged shadow pairs (default SHADOW_AUDIT_SAMPLE, 50, of last month) to Label Studio as "
            "pairwise tasks, the candidate on a random side (stored); people's picks come back by the labelling "
            "webhook and pull. --agreement prints judge-human agreement month by month instead.")

    def add_arguments(self, parser):
        parser.add_argument("--month", default=None, metavar="YYYY-MM", help="month of the judged pairs (default: last)")
        parser.add_argument("--release", default=None, metavar="NAME")
        parser.add_argument("--sample", type=int, default=None, metavar="N")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--agreement", action="store_true", help="print judge-human agreement per month")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        if o["agreement"]:
            rows = selectors.audit_agreement_by_month(release=o["release"])
            if o["json"]:
                self.stdout.write(json.dumps(rows, default=str))
                return
            for r in rows:
                agreement = "n/a" if r.get("agreement") is None else f"{r['agreement'] * 100:.1f}%"
                self.stdout.write(f"{r['month']}: {r['picked']} of {r['audited']} audited pairs picked by people; "
                                  f"judge agreement {agreement}")
            return
        try:
            a = audit.audit_create(month=o["month"], release=o["release"], sample=o["sample"], seed=o["seed"])
            result = audit.audit_push(audit_id=a.pk)
        except audit.AuditError as e:
            raise CommandError(str(e)) from None
        except (LabelStudioError, LabelStudioUnavailable) as e:
            raise CommandError(f"audit saved but not pushed ({e}); the monthly task retries it") from None
        if o["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"audit {result['audit']} ({result['month']}): {result['pairs']} pairs, {result['pushed']} "
                              f"sent to Label Studio project {result['project_id']}")
