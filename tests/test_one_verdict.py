"""One human verdict (issue #21 item 1): labelling adjudicates it (labelling.selectors.adjudicate);
promotion, signal validity and the grader's scale read it from there. One fixture, every consumer."""
from collections import Counter

import pytest
from django.test import override_settings

from evaluation.grader import VERDICT_SCORES as GRADER_SCORES
from evaluation.selectors import validity
from labelling.selectors import (adjudicated_verdicts, failure_mode_pareto, failure_mode_production_rates,
                                 item_judgement, live_annotations_by_item)
from labelling.vocabulary import VERDICT_SCORES
from labelling.models import BatchItem
from tests.factories import AnnotationFactory, BatchItemFactory, ResolutionFactory

pytestmark = pytest.mark.django_db

# votes of the annotators, a resolution, and the verdict every consumer must see (None: no verdict)
CASES = [
    (["incorrect"], None, "incorrect"),
    (["correct", "correct", "incorrect"], None, "correct"),        # 2/3 = 0.67 >= 0.66
    (["correct", "correct", "incorrect", "incorrect", "incorrect"], None, None),  # 3/5 = 0.6 < 0.66
    (["correct", "incorrect"], None, None),                         # a tie
    (["correct", "incorrect"], "partially_correct", "partially_correct"),  # the resolution wins
    (["cannot_judge"], None, "cannot_judge"),
    ([], None, None),
]


@pytest.fixture
def items():
    out = []
    for votes, resolution, want in CASES:
        item = BatchItemFactory()
        for i, v in enumerate(votes):
            AnnotationFactory(item=item, annotator=f"a{i}", verdict=v, failure_modes=[f"M{len(out)}-{i}"])
        if resolution:
            ResolutionFactory(item=item, verdict=resolution, failure_modes=[f"RESOLVED-{len(out)}"])
        out.append((item, want))
    return out


@override_settings(PROMOTION_MIN_AGREEMENT=0.66)
def test_every_consumer_reads_the_same_human_verdict(items):
    bulk = adjudicated_verdicts()
    live = live_annotations_by_item()
    for item, want in items:
        item = BatchItem.objects.select_related("resolution").get(pk=item.pk)
        judgement, why = item_judgement(item, live.get(item.pk, []))
        assert (judgement.verdict if judgement else None) == want, (item.pk, why)
        assert bulk.get(item.pk) == want
    # signal validity: the same verdicts, less the one without a score
    assert validity.human_verdicts() == {i.pk: w for i, w in items if w is not None and w != "cannot_judge"}
    # the failure modes per item on the pages and in the production rates are those of the verdict:
    # each annotation tags its own code (a0, a1, …), the resolution tags RESOLVED
    want_modes = {}
    for item, want in items:
        j, _ = item_judgement(item, live.get(item.pk, []))
        if j is not None:
            for m in j.failure_modes:
                want_modes[m] = want_modes.get(m, 0) + 1
    assert {r["code"]: r["items"] for r in failure_mode_pareto()} == want_modes
    assert set(failure_mode_production_rates()) == set(want_modes)
    # and one scale: the grader's scores and validity's "incorrect" weights are the same table
    assert GRADER_SCORES is VERDICT_SCORES
    assert validity.INCORRECT == {v: 1 - s for v, s in VERDICT_SCORES.items()}


@override_settings(PROMOTION_MIN_AGREEMENT=0.5)
def test_the_agreement_threshold_moves_every_consumer_together(items):
    split = items[2][0]  # 3 of 5 for "incorrect": enough at 0.5
    assert adjudicated_verdicts()[split.pk] == "incorrect"
    assert validity.human_verdicts()[split.pk] == "incorrect"
    judgement, _ = item_judgement(split, live_annotations_by_item(items=[split.pk])[split.pk])
    assert judgement.verdict == "incorrect"


def test_adjudicate_names_why_there_is_no_verdict():
    from labelling.selectors import adjudicate

    assert adjudicate(Counter()) == (None, "no verdict yet")
    verdict, why = adjudicate(Counter({"correct": 1, "incorrect": 1}))
    assert verdict is None and "disagree" in why
