import json

from django.core.management.base import BaseCommand

from core.fmt import pct
from evaluation import selectors
from evaluation.services.alarms import alarms_record
from evaluation.services.rollup import turn_day_counts_refresh


def _pct(v):
    return pct(v, missing="—")


def _num(v, fmt=".3f"):
    return "—" if v is None else format(v, fmt)


class Command(BaseCommand):
    help = ("Offline score against production failure rate per release (last K releases, days 1..CORRELATION_"
            "WINDOW_DAYS of each), their rank correlation (or cannot_conclude below CORRELATION_MIN_RELEASES), "
            "discordant releases, item-level AUC and grader-human kappa, which signals predict a wrong answer on "
            "the labelled items, and alarms (stored, and posted to ALARM_WEBHOOK_URL when set).")

    def add_base_argument(self, parser, *args, **kwargs):
        # Our --version is the test-set version (the issue's interface), not Django's version flag.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--last", type=int, default=None, metavar="K",
                            help="releases in the rank correlation (default CORRELATION_LAST_K = 12)")
        parser.add_argument("--testset", default=None, help="compare offline scores on this test set only")
        parser.add_argument("--version", type=int, default=None, help="… and this version only")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        turn_day_counts_refresh()  # days whose signals changed since the last refresh
        data = selectors.correlation_data(last=opts["last"], testset=opts["testset"], version=opts["version"])
        new = alarms_record(found=data["alarms"])
        report = selectors.report_json(data)
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        self._text(data, report, new)

    def _text(self, data, report, new):
        w = self.stdout.write
        basis = (f"standardised to the common source mix {', '.join(f'{k} {v:.0%}' for k, v in data['reference_mix'].items())}"
                 if data["standardised"] else "crude (no source mix common to all releases)")
        version = f"{data['testset']} v{data['version']}" if data["testset"] else "no offline scores yet"
        w(f"Releases (last {data['last']}, production = days 1..{data['window_days']} of serving, {basis}; "
          f"offline on {version}):")
        w(f"  {'release':<32} {'offline':>8} {'95% CI':>17} {'failure':>8} {'95% CI':>17} {'turns':>8}")
        for r in data["releases"]:
            w(f"  {r['name'][:32]:<32} {_num(r['offline_score']):>8} "
              f"{'[' + _num(r['offline_ci'][0]) + ', ' + _num(r['offline_ci'][1]) + ']':>17} "
              f"{_pct(r['production_failure_rate']):>8} "
              f"{'[' + _pct(r['production_ci'][0]) + ', ' + _pct(r['production_ci'][1]) + ']':>17} {r['turns']:>8}")
        if not data["releases"]:
            w("  (no release has served a turn: make releases with release_add or releases_from_models)")
        rc = report["rank_correlation"]
        if rc.get("status") == "cannot_conclude":
            w(f"Rank correlation: cannot conclude yet — {rc['k']} releases with both numbers, "
              f"{data['min_releases']} needed")
        else:
            w(f"Rank correlation (Spearman, offline score vs 1 - failure rate): {rc['spearman']:.3f} "
              f"[{rc['ci_low']:.3f}, {rc['ci_high']:.3f}] over {rc['k']} releases")
        w(f"Discordant releases: {', '.join(report['discordant']) or 'none'}")
        il = report["item_level"]
        if il["auc"] is None:
            w(f"Item level: insufficient data ({il['n']} graded served answers with both outcomes needed; "
              f"grade them with offline_run --served)")
        else:
            w(f"Item level: AUC {il['auc']:.3f} [{_num(il['ci_low'])}, {_num(il['ci_high'])}] over {il['n']} served "
              f"answers; grader vs human kappa {_num(il['kappa_vs_human'])}")
        v = data["signal_validity"]
        p = v["p_incorrect"]
        w(f"Signal validity on {v['used']} labelled production turns (weighted by 1/inclusion probability; "
          f"P(incorrect) {_pct(p.get('rate'))}):")
        w(f"  {'signal':<18} {'labelled':>8} {'P(inc|sig)':>10} {'lift':>6} {'95% CI':>15} {'AUC':>6}")
        for row in v["rows"]:
            auc = row["auc"].get("auc")
            w(f"  {row['signal']:<18} {row['labelled']:>8} {_pct(row['p_incorrect_given_signal']):>10} "
              f"{_num(row['lift'], '.2f'):>6} {'[' + _num(row['ci_low'], '.2f') + ', ' + _num(row['ci_high'], '.2f') + ']':>15} "
              f"{_num(auc):>6}")
        if not v["used"]:
            w("  (no labelled production turns yet: label some in Label Studio and pull_annotations)")
        w(f"Alarms: {len(report['alarms'])} ({len(new)} new)")
        for a in report["alarms"]:
            w(f"  [{a['kind']}] {a['detail']}")
        if data["releases"] and all(r["offline_score"] is None for r in data["releases"]):
            w("Offline scores need an LLM: set GRADER_MODEL and OPENAI_BASE_URL/OPENAI_API_KEY (or GRADER_BASE_URL/"
              "GRADER_API_KEY), then offline_run --release NAME --testset T --version N [--served], or import "
              "scores with offline_import")
