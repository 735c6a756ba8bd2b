"""The vocabulary of implicit signals, defined once: names, what each means, the definition version.

Everything that lists signals (models, detection, rates, the admin, labelling's task text and
strata, the dashboard) imports from here. No Django imports: this is data.

A signals row records the ``DEFINITION_VERSION`` it was computed under. When a definition
changes, the version goes up and ``CHANGELOG`` says how to read old rates next to new ones.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFINITION_VERSION = 2


def current_definition_version() -> int:
    """Model default (a callable, so bumping the version needs no migration)."""
    return DEFINITION_VERSION


@dataclass(frozen=True)
class Signal:
    name: str
    label: str  # short, for charts and tables
    description: str  # one line an annotator or a reader of a report understands
    kind: str  # "reaction" (what the next query did), "exit" (how the exchange ended), "event"


SIGNALS: tuple[Signal, ...] = (
    Signal("rephrased", "rephrase", "user re-asked the same thing", "reaction"),
    Signal("followed_up", "follow-up", "user asked a follow-up", "reaction"),
    Signal("abandoned", "abandonment", "user left right after this answer", "exit"),
    Signal("session_ended", "session end", "the exchange ended here, no sign the user left unhappy", "exit"),
    Signal("copied", "copy", "user copied the answer", "event"),
    Signal("thumbs_up", "thumbs up", "thumbs up", "event"),
    Signal("thumbs_down", "thumbs down", "thumbs down", "event"),
    Signal("escalated", "escalation", "escalated to a human", "event"),
    Signal("human_override", "override", "a human agent replaced the answer", "event"),
)
SIGNAL_NAMES: tuple[str, ...] = tuple(s.name for s in SIGNALS)
SIGNAL_LABELS: dict[str, str] = {s.name: s.label for s in SIGNALS}
SIGNAL_DESCRIPTIONS: dict[str, str] = {s.name: s.description for s in SIGNALS}

# Event types (production-log contract) that set a signal on the turn they are attached to.
EVENT_SIGNALS: dict[str, str] = {"copy": "copied", "thumbs_up": "thumbs_up", "thumbs_down": "thumbs_down",
                                 "escalation": "escalated", "human_override": "human_override"}
# Event types that say the user left: evidence for `abandoned`.
LEAVE_EVENTS: frozenset[str] = frozenset({"navigate_away", "close"})
# Signals that make a turn a failure candidate (thumbs_down and escalated by setting).
FAILURE_SIGNALS: tuple[str, ...] = ("human_override", "rephrased", "thumbs_down", "escalated")

CHANGELOG: tuple[tuple[int, str], ...] = (
    (1, "rephrased / followed_up: next query within SIGNALS_WINDOW_SECONDS, rephrase score >= 0.5 (rule "
        "cascade). abandoned: no next query within the window and no copy / thumbs_up on the answer "
        "(every last turn of a session counted)."),
    (2, "abandoned only with evidence of leaving: a navigate_away / close event within "
        "SIGNALS_ABANDON_SECONDS of the answer that is the user's next activity in the session (on this "
        "turn or any other). Without it the turn is session_ended (neutral). "
        "v1 abandoned = v2 abandoned + v2 session_ended, turn for turn. "
        "rephrased: the learned detector's probability (at the SIGNALS_REPHRASE_PRIOR base rate) "
        ">= its threshold; every candidate carries failure_probability."),
)
