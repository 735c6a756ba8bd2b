import json

from django.core.management.base import BaseCommand

from production import selectors
from production.signal_definitions import SIGNAL_NAMES


class Command(BaseCommand):
    help = "Report what evalgap holds: turns, sessions, sources, models, events by type, rejects."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--top", type=int, default=5, help="failure candidates to show")

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
        rates = selectors.signal_rates_overall()
        if not rates["turns"]:
            return
        w("")
        versions = ", ".join(f"v{v}: {n}" for v, n in rates["versions"].items())
        w(f"signal rates over {rates['turns']} turns (signal definitions v{rates['definition_version']}; "
          f"rows by version {versions}):")
        for name in (*SIGNAL_NAMES, "no_reaction", "failure_candidate"):
            note = "  (abandoned + session_ended = v1's abandoned)" if name == "no_reaction" else ""
            w(f"  {name:<18} {100 * rates[name + '_rate']:6.1f} %{note}")
        w("")
        w("per model (rephrase / follow-up / abandon / session end / escalation):")
        for m in selectors.signal_rates_by_model():
            w(f"  {m['model'] or '(none)':<30} {m['turns']:>6} turns  {100 * m['rephrased_rate']:5.1f} % "
              f"{100 * m['followed_up_rate']:5.1f} % {100 * m['abandoned_rate']:5.1f} % "
              f"{100 * m['session_ended_rate']:5.1f} % {100 * m['escalated_rate']:5.1f} %")
        w("")
        w(f"top failure candidates (re-asked right after the answer, strongest failure probability first; "
          f"{selectors.failure_candidates().count()} candidates in all):")
        for t in selectors.top_rephrased_failures(limit=opts["top"]):
            ev = t.signals.evidence["rephrased"]
            w(f"  [{t.source.name}] {t.external_id}  P(failed) {t.signals.failure_probability:.3f}")
            w(f"      asked   : {t.query[:100]}")
            w(f"      answer  : {(t.response or '(empty)')[:100]}")
            w(f"      re-asked: {ev['next_query'][:100]}  (P(re-ask) {ev['probability']:.3f}, "
              f"{ev['gap_seconds']:.0f} s later, turn {ev['next_turn_id']})")
