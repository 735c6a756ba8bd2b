import json

from django.core.management.base import BaseCommand, CommandError

from core.fmt import pct
from llm import client as llm
from shadow.services import calibration
from shadow.services.judging import PromptMissing

from ._progress import Progress


class Command(BaseCommand):
    help = ("Run the judge (JUDGE_MODEL, both orders) on human pairwise preferences, JSON lines {query, response_a, "
            "response_b, human: a|b|tie}, and report agreement (with and without ties), Cohen's kappa, swap "
            "consistency, first-position rate and how often the longer answer was preferred, the judge's and the "
            "humans'. examples/judge_preferences/ holds four public sets.")

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH")
        parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        bar = Progress("call", "judge_calibrate")
        try:
            result, row = calibration.judge_calibrate(path=o["path"], limit=o["limit"], progress=bar)
        except (calibration.CalibrationError, llm.LLMNotConfigured, PromptMissing) as e:
            raise CommandError(str(e)) from None
        finally:
            bar.close()
        if o["json"]:
            self.stdout.write(json.dumps(calibration.calibration_for_json(result)))
            return
        n = result["n"]
        missing = f", {result['missing']} without a verdict" if result["missing"] else ""
        kappa = "n/a" if result["cohen_kappa"] is None else f"{result['cohen_kappa']:.3f}"
        self.stdout.write(f"{row.name}: {result['pairs']} pairs judged by {row.judge_model} ({row.prompt_version})"
                          f"{missing}")
        self.stdout.write(f"  agreement {pct(result['agreement'])} (n={n['agreement']}), human-decisive "
                          f"{pct(result['agreement_decisive'])} (n={n['agreement_decisive']}), both decisive "
                          f"{pct(result['agreement_both_decisive'])}; kappa {kappa}")
        self.stdout.write(f"  swap consistency {pct(result['swap_consistency'])}, first position "
                          f"{pct(result['first_position_rate'])}, longer preferred {pct(result['longer_preferred_rate'])}"
                          f" (humans {pct(result['human_longer_preferred_rate'])})")
