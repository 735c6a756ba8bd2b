"""Signal detection: judge each answer by what the user or an agent did next.

Works on dirty sessions only (ingest marks a session dirty when a turn or event arrives), in
batches; each batch claims its sessions and writes their signals in one transaction, so a
crash leaves them dirty and a re-run redoes them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F

from ..models import SIGNAL_NAMES, Event, Session, Turn, TurnSignals

POSITIVE_EVENTS = {"copy", "thumbs_up"}
EVENT_FLAGS = {"copy": "copied", "thumbs_up": "thumbs_up", "thumbs_down": "thumbs_down",
               "escalation": "escalated", "human_override": "human_override"}


@dataclass
class DetectResult:
    sessions: int = 0
    turns: int = 0
    counts: dict = field(default_factory=lambda: {name: 0 for name in (*SIGNAL_NAMES, "failure_candidate")})

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "turns": self.turns, **self.counts}


_detectors: dict = {}


def get_detector():
    """One detector per process and configuration: the encoder takes seconds to load."""
    key = (settings.SIGNALS_SEMANTIC, settings.SIGNALS_REPHRASE_THRESHOLD)
    if key not in _detectors:
        from ..similarity import RephraseDetector

        kwargs = {"semantic": settings.SIGNALS_SEMANTIC}
        if settings.SIGNALS_REPHRASE_THRESHOLD is not None:
            kwargs["threshold"] = settings.SIGNALS_REPHRASE_THRESHOLD
        _detectors[key] = RephraseDetector(**kwargs)
    return _detectors[key]


def is_failure_candidate(flags: dict[str, bool]) -> bool:
    return (flags["human_override"] or flags["rephrased"]
            or (settings.SIGNALS_FAILURE_ON_THUMBS_DOWN and flags["thumbs_down"])
            or (settings.SIGNALS_FAILURE_ON_ESCALATION and flags["escalated"]))


def _gap_seconds(turn: Turn, nxt: Turn) -> float | None:
    """From the moment the answer was served (or the query, if unknown) to the next query."""
    start = turn.response_timestamp or turn.timestamp
    if start is None or nxt.timestamp is None:
        return None
    return (nxt.timestamp - start).total_seconds()


def _session_turns(session_ids: list[int]) -> dict[int, list[Turn]]:
    by_session: dict[int, list[Turn]] = defaultdict(list)
    turns = (Turn.objects.filter(session_id__in=session_ids)
             .only("id", "external_id", "session_id", "timestamp", "position", "query", "response_timestamp")
             .order_by("session_id", F("timestamp").asc(nulls_last=True), F("position").asc(nulls_last=True), "id"))
    for t in turns:
        by_session[t.session_id].append(t)
    return by_session


def _events_by_turn(turn_ids: list[int]) -> dict[int, list[Event]]:
    events: dict[int, list[Event]] = defaultdict(list)
    for e in Event.objects.filter(turn_id__in=turn_ids).order_by("timestamp", "id"):
        events[e.turn_id].append(e)
    return events


def _detect_batch(session_ids: list[int], detector) -> list[TurnSignals]:
    window = settings.SIGNALS_WINDOW_SECONDS
    by_session = _session_turns(session_ids)
    all_turns = [t for ts in by_session.values() for t in ts]
    events = _events_by_turn([t.id for t in all_turns])

    # Pairs (turn, next turn) inside the window, scored in one batch across sessions.
    pairs: list[tuple[Turn, Turn, float | None]] = []
    nexts: dict[int, tuple[Turn, float | None]] = {}
    for turns in by_session.values():
        for turn, nxt in zip(turns, turns[1:]):
            gap = _gap_seconds(turn, nxt)
            nexts[turn.id] = (nxt, gap)
            if gap is None or gap <= window:
                pairs.append((turn, nxt, gap))
    scores = detector.score_pairs([(t.query, n.query) for t, n, _ in pairs]) if pairs else []
    scored = {t.id: (n, gap, s) for (t, n, gap), s in zip(pairs, scores)}

    rows = []
    for turn in all_turns:
        flags = dict.fromkeys(SIGNAL_NAMES, False)
        evidence: dict = {}
        corrected = ""
        for e in events.get(turn.id, []):
            name = EVENT_FLAGS.get(e.type)
            if name is None:
                continue
            flags[name] = True
            evidence.setdefault(name, []).append(
                {k: v for k, v in {"event_id": e.id, "timestamp": e.timestamp.isoformat() if e.timestamp else None,
                                   "actor": e.actor, "reason": e.reason}.items() if v}
            )
            if e.type == "human_override":
                corrected = e.corrected_response  # the latest override wins (events are in time order)
        if turn.id in scored:
            nxt, gap, s = scored[turn.id]
            name = "rephrased" if detector.is_rephrase(s) else "followed_up"
            flags[name] = True
            evidence[name] = {"next_turn_id": nxt.external_id, "similarity": round(s.score, 4),
                              "lexical": round(s.lexical, 4),
                              "semantic": None if s.semantic is None else round(s.semantic, 4),
                              "stage": s.stage, "gap_seconds": gap, "threshold": detector.threshold,
                              "next_query": nxt.query[:300]}
        elif not (flags["copied"] or flags["thumbs_up"]):
            flags["abandoned"] = True
            nxt_gap = nexts.get(turn.id)
            evidence["abandoned"] = (
                {"last_turn_of_session": True} if nxt_gap is None
                else {"next_turn_id": nxt_gap[0].external_id, "gap_seconds": nxt_gap[1], "window_seconds": window}
            )
        rows.append(TurnSignals(turn_id=turn.id, corrected_response=corrected, evidence=evidence,
                                failure_candidate=is_failure_candidate(flags), **flags))
    return rows


def signals_detect(*, full: bool = False, batch_sessions: int = 2000, progress=None) -> DetectResult:
    """Detect signals for every dirty session (every session with full=True)."""
    detector = get_detector()
    if full:
        Session.objects.filter(dirty=False).update(dirty=True)
    result = DetectResult()
    update_fields = [*SIGNAL_NAMES, "failure_candidate", "corrected_response", "evidence", "detected_at"]
    last_id = 0
    while True:
        with transaction.atomic():
            # Claim a batch; ingest re-dirtying one of them meanwhile waits for our commit and
            # then leaves it dirty for the next run.
            ids = list(Session.objects.select_for_update(skip_locked=True)
                       .filter(dirty=True, id__gt=last_id).order_by("id").values_list("id", flat=True)[:batch_sessions])
            if not ids:
                break
            last_id = ids[-1]
            rows = _detect_batch(ids, detector)
            TurnSignals.objects.bulk_create(rows, batch_size=1000, update_conflicts=True, unique_fields=["turn"],
                                            update_fields=update_fields)
            Session.objects.filter(id__in=ids).update(dirty=False)
        result.sessions += len(ids)
        result.turns += len(rows)
        for r in rows:
            for name in (*SIGNAL_NAMES, "failure_candidate"):
                result.counts[name] += getattr(r, name)
        if progress:
            progress(len(ids))
    return result
