import json

from django.core.management.base import BaseCommand

from shadow.services.mirror import mirror_pairs_sync


class Command(BaseCommand):
    help = ("Turn mirrored candidate answers (production log lines of type 'shadow') into shadow pairs. Answers for a "
            "release evalgap does not know yet are counted and kept: they become pairs once the release is added.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        out = mirror_pairs_sync()
        if o["json"]:
            self.stdout.write(json.dumps(out))
            return
        unknown = ", ".join(f"{name} ({n})" for name, n in out["unknown_release"].items())
        self.stdout.write(f"mirror: {out['pairs_created']} pairs created, {out['waiting_for_turn']} waiting for their "
                          f"turn, {out['already_paired']} already paired, {out['self_served']} for the release that "
                          f"served the turn" + (f"; unknown releases (release_add them): {unknown}" if unknown else ""))
