import argparse
import getpass
import json
import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from gate.policy import GateUsageError, policy_load
from gate.render import as_markdown, as_text
from gate.services import gate_decide


class Command(BaseCommand):
    help = ("Ask the release gate whether CANDIDATE may replace BASELINE: ship (exit 0), block (exit 1) or "
            "insufficient_evidence (exit 3); 2 for usage errors (unknown release, missing test set, bad policy). "
            "Offline scores are necessary, never sufficient: shipping also needs shadow or A/B evidence as the "
            "policy says. Every decision is recorded with who asked, the policy's hash and the evidence.")

    def add_arguments(self, parser):
        parser.add_argument("--candidate", required=True, metavar="NAME")
        parser.add_argument("--baseline", required=True, metavar="NAME")
        parser.add_argument("--policy", default=None, metavar="FILE",
                            help="YAML policy that tightens the server's (GATE_POLICY_FILE, else the settings' "
                                 "GATE_POLICY); a looser value is refused (exit 2, the key named)")
        parser.add_argument("--testset", default=None, metavar="T",
                            help="read offline scores on this test set (only where the policy names none)")
        parser.add_argument("--as-of", default=None, metavar="YYYY-MM-DD", type=_day,
                            help="decide as the gate would have at the end of that day (UTC), on the evidence "
                                 "up to then; recorded like any decision, with as_of")
        parser.add_argument("--json", action="store_true", help="print the decision as one JSON object")
        parser.add_argument("--format", choices=["text", "json", "markdown"], default=None,
                            help="text (default), json (same as --json) or markdown (for a pull request)")

    def handle(self, *args, **o):
        fmt = o["format"] or ("json" if o["json"] else "text")
        if o["json"] and fmt != "json":
            raise CommandError("--json and --format markdown/text exclude each other", returncode=2)
        try:
            policy = policy_load(o["policy"]).with_testset(o["testset"])
            decision = gate_decide(candidate=o["candidate"], baseline=o["baseline"], policy=policy,
                                   requested_by=f"cli:{_os_user()}", via="cli", auth="os-user", as_of=o["as_of"])
        except GateUsageError as e:
            raise CommandError(str(e), returncode=2) from None
        if fmt == "json":
            self.stdout.write(json.dumps(decision.as_json()))
        elif fmt == "markdown":
            self.stdout.write(as_markdown(decision))
        else:
            self.stdout.write(as_text(decision))
        self.stdout.flush()
        if decision.exit_code:
            sys.exit(decision.exit_code)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"
