"""Demo only: stand in for annotators with the datasets' own human labels.

The example log comes from public datasets whose answers and labels were written by people:
QuAC/CANARD answers are spans a human answerer selected from the Wikipedia section (their gold
answer), and HINT3 marks the queries its bot had no answer node for. This script turns those
human labels into Label Studio annotations on tasks evalgap pushed, so that `make demo` can show
the rest of the loop (pull, promote, freeze, export) without a person clicking through the UI:
- a CANARD turn with a served answer (not "I don't know.")  -> verdict `correct`, reference = that answer;
- a HINT3 query the bot had no node for                      -> verdict `incorrect`, `COMPLETENESS.NO_ANSWER`,
  no reference answer (so promotion holds it back, as its rules say).
Every annotation made here says so in its notes. Usage: python examples/label_from_dataset.py [--per-source N]
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")

import django  # noqa: E402

django.setup()

from labelling.models import TaskLink  # noqa: E402
from labelling.services.projects import get_client  # noqa: E402

NOTE = "derived from the dataset's own human labels (examples/label_from_dataset.py), not a live annotator"


def judgement(turn) -> list[dict] | None:
    verdict = {"from_name": "verdict", "to_name": "response", "type": "choices"}
    text = {"to_name": "response", "type": "textarea"}
    meta = turn.metadata or {}
    if meta.get("dataset") == "canard_dev" and turn.response and turn.response != "I don't know.":
        return [{**verdict, "value": {"choices": ["correct"]}},
                {**text, "from_name": "reference_answer", "value": {"text": [turn.response]}},
                {**text, "from_name": "notes", "value": {"text": [NOTE]}}]
    if meta.get("dataset") == "hint3_v2_test" and meta.get("out_of_scope"):
        return [{**verdict, "value": {"choices": ["incorrect"]}},
                {"from_name": "failure_modes", "to_name": "response", "type": "taxonomy",
                 "value": {"taxonomy": [["COMPLETENESS", "COMPLETENESS.NO_ANSWER"]]}},
                {**text, "from_name": "notes", "value": {"text": [NOTE]}}]
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-source", type=int, default=40)
    args = ap.parse_args()
    client = get_client()
    done: dict[str, int] = {}
    links = TaskLink.objects.filter(item__annotations__isnull=True).select_related("item__turn__source")
    for link in links.order_by("item__turn__source__name", "item__turn__external_id"):
        source = link.item.turn.source.name
        if done.get(source, 0) >= args.per_source:
            continue
        result = judgement(link.item.turn)
        if result is None:
            continue
        client.create_annotation(link.ls_task_id, result)
        done[source] = done.get(source, 0) + 1
    print("annotated from dataset labels: " + (", ".join(f"{k} {v}" for k, v in sorted(done.items())) or "none"))


if __name__ == "__main__":
    main()
