import json

from django.core.management.base import BaseCommand

from evaluation.services.failure_model import failure_model_fit


def _ci(d: dict, key: str) -> str:
    if not d or d.get(key) is None:
        return f"insufficient data (n={d.get('n', 0) if d else 0})"
    return f"{d[key]:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}] (n={d['n']})"


class Command(BaseCommand):
    help = ("Fit P(answer judged incorrect | signals) on the labelled production turns (weighted by 1 / inclusion "
            "probability), report its held-out AUC and Brier against the stated weights, its reliability and each "
            "input's odds ratio, store it as a new version and hand it to signal detection. Below "
            "FAILURE_MODEL_MIN_LABELS it fits nothing and says so. The same labels again: unchanged.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        out = failure_model_fit()
        if opts["json"]:
            self.stdout.write(json.dumps(out, sort_keys=True))
            return
        self.stdout.write(out["message"])
        if out["version"] is not None:
            m = out["metrics"]
            held = m["held_out"]
            self.stdout.write(f"held out ({held['method']}):")
            for name in ("fitted", "stated"):
                self.stdout.write(f"  {name:7} AUC {_ci(held[name]['auc'], 'auc')}  Brier {_ci(held[name]['brier'], 'brier')}")
            self.stdout.write(f"  Brier fitted - stated {_ci(held['brier_difference'], 'brier')}")
            self.stdout.write("reliability (fitted, held out): bin  n  predicted  observed")
            for r in m["reliability"]:
                obs = "—" if r["observed"] is None else f"{r['observed']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                self.stdout.write(f"  {r['bin'][0]:.1f}-{r['bin'][1]:.1f}  {r['n']}  {r['predicted']:.3f}  {obs}")
            self.stdout.write("odds ratio per input:")
            for r in m["lifts"]:
                value = ("insufficient data" if r["odds_ratio"] is None
                         else f"{r['odds_ratio']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]")
                self.stdout.write(f"  {r['input']:15} {value} (n={r['n']})")
            prior = m["rephrase_prior"]
            if prior["source"] == "fitted":
                self.stdout.write(f"re-ask prior estimated from the labels: {_ci(prior, 'value')}, used instead of "
                                  f"SIGNALS_REPHRASE_PRIOR={prior['setting']}")
            else:
                self.stdout.write(f"re-ask prior: insufficient data (n={prior['n']}), keeping "
                                  f"SIGNALS_REPHRASE_PRIOR={prior['setting']}")
        self.stdout.write(f"failure_probability now computed by: {out['using']}")
