import json

from django.core.management.base import BaseCommand, CommandError

from core.fmt import pct
from shadow import selectors


class Command(BaseCommand):
    help = ("The shadow report of a release: win rate against the served answers (ties as half), decisive, tie "
            "and inconsistency rates, the length-controlled and human-calibrated decisive win rates, per failure "
            "mode with Benjamini-Hochberg q-values, and the decision (better / worse / no_difference / "
            "insufficient_data) on the decisive win rate. The intervals are 95% confidence sequences clustered by "
            "conversation: valid however often the report is read, so it may be read every day and acted on at "
            "the first look that decides, once SHADOW_MIN_PAIRS pairs over SHADOW_MIN_DAYS days are in.")

    def add_arguments(self, parser):
        parser.add_argument("--release", required=True, metavar="NAME")
        parser.add_argument("--days", type=int, default=None, help="window in days, ending on the last judged day "
                                                                   "(default SHADOW_REPORT_DAYS, 7)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        if o["days"] is not None and o["days"] < 1:
            raise CommandError("--days: must be 1 or more")
        try:
            report = selectors.shadow_report(o["release"], o["days"])
        except ValueError as e:
            raise CommandError(f"--release: {e}") from None
        if o["json"]:
            self.stdout.write(json.dumps(selectors.report_for_json(report)))
            return
        r = report
        self.stdout.write(f"shadow report for {r['release']}: {r['since'] or '-'} to {r['until'] or '-'}, "
                          f"{r['pairs']} judged pairs over {r['days_with_pairs']} days "
                          f"({r['conversations']} conversations; {r['unjudged']} unjudged, {r['pending']} pending)")
        for kind, count in r.get("unjudged_reasons", {}).items():
            self.stdout.write(f"  unjudged: {count} - {kind}")
        if r.get("diverged"):
            self.stdout.write(f"  diverged: {r['diverged']} pairs ended when the candidate called a tool production "
                              f"did not call with those arguments (not judged, not losses)")
        if r.get("input_note"):
            self.stdout.write(f"  input: {r['input_note']}")
        if r["pairs"]:
            self.stdout.write(f"  win rate {pct(r['win_rate'])} (95% CS {pct(r['ci_low'])}-{pct(r['ci_high'])}, "
                              f"{r['interval_method']}); decisive {pct(r['decisive_win_rate'])}; ties "
                              f"{pct(r['tie_rate'])}; inconsistent {pct(r['inconsistent_rate'])}; length-controlled "
                              f"{pct(r['length_controlled_win_rate'])}")
            for row in r["by_failure_mode"][:10]:
                self.stdout.write(f"  {row['code']:<28} {row['pairs']:>5} pairs  win {pct(row['win_rate'])} "
                                  f"({pct(row['ci_low'])}-{pct(row['ci_high'])})  q={row['q_value']:.3f}"
                                  if row["q_value"] is not None else f"  {row['code']:<28} {row['pairs']:>5} pairs")
        self.stdout.write(f"decision: {r['decision']} ({r['decision_reason']})")
        self.stdout.write(f"  {r['horizon']}")
