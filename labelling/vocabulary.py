"""The words labelling shares with the rest of evalgap, defined once (no Django here, so the
label config module can use them too): verdicts and their groups, and the strata of a sample.

Verdict values are a contract with Label Studio (the config's choices) and with stored
annotations and test items: never rename one.
"""
from __future__ import annotations

VERDICTS = ("correct", "partially_correct", "incorrect", "cannot_judge")
CORRECT = "correct"
CANNOT_JUDGE = "cannot_judge"
# The served answer failed: these are labelled failures (generation seeds from them) and a test
# item with one of them needs a reference answer (what the answer should have been).
FAILED_VERDICTS = ("incorrect", "partially_correct")
# How good the served answer was, per verdict: the one scale the offline grader, signal validity and
# every rate over human verdicts use ("cannot_judge" has none: it is left out wherever a score is read).
VERDICT_SCORES = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}

# Strata of a labelling sample. A production turn falls in the first of the signal strata whose
# signal it has (the order matters: a failure candidate that was also followed up is "failure"),
# else in "none"; "generated" holds generated cases under review, never a production sample.
FAILURE = "failure"  # failure candidates: taken in full, not sampled, when a batch includes failures
STRATUM_SIGNALS = ((FAILURE, "failure_candidate"), ("follow_up", "followed_up"), ("abandoned", "abandoned"))
NONE = "none"
GENERATED = "generated"
SAMPLED_STRATA = tuple(s for s, _ in STRATUM_SIGNALS) + (NONE,)
STRATA = SAMPLED_STRATA + (GENERATED,)


def stratum_of(signals) -> str:
    """The stratum of a turn from its signals row (an object with the signal attributes, or None
    for a turn not yet detected)."""
    if signals is not None:
        for stratum, field in STRATUM_SIGNALS:
            if getattr(signals, field):
                return stratum
    return NONE
