import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labelling.services.selection import batch_select


class Command(BaseCommand):
    help = ("Create a labelling batch: every failure candidate not yet labelled, plus a stratified random sample "
            "of a month's turns (failure / follow-up / abandoned / none) with inclusion probabilities. "
            "With neither --failures nor --sample, both (the monthly job).")

    def add_arguments(self, parser):
        parser.add_argument("--failures", action="store_true", help="include every failure candidate not yet sent")
        parser.add_argument("--sample", type=int, default=None, metavar="N",
                            help=f"random sample size (default {settings.LABELLING_SAMPLE_SIZE})")
        parser.add_argument("--month", default=None, help="YYYY-MM to sample from (default: last month)")
        parser.add_argument("--seed", type=int, default=None, help="same seed + same data = same sample")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        failures, sample = opts["failures"], opts["sample"]
        if not failures and sample is None:
            failures, sample = True, settings.LABELLING_SAMPLE_SIZE
        if sample is not None and sample < 0:
            raise CommandError("--sample: must be >= 0")
        try:
            batch = batch_select(failures=failures, sample=sample or 0, month=opts["month"], seed=opts["seed"])
        except ValueError as e:
            raise CommandError(str(e)) from None
        summary = {"batch": batch.pk, "failures": batch.failures, "sampled": batch.sampled,
                   "skipped_duplicates": batch.skipped_duplicates}
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(f"batch {batch.pk} ({batch.month}): {batch.failures} failures, {batch.sampled} sampled, "
                              f"{batch.skipped_duplicates} near-duplicates skipped")
