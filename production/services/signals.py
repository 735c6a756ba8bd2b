"""Signal detection: judge each answer by what the user or an agent did next.

Works on dirty sessions only (ingest marks a session dirty when a turn or event arrives), in
batches; each batch claims its sessions and writes their signals in one transaction, so a
crash leaves them dirty and a re-run redoes them. The hot path works on plain tuples and, on
PostgreSQL, writes with COPY: model instances cost more than the detection itself.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import SIGNAL_NAMES, Event, Session, Turn, TurnSignals

EVENT_FLAGS = {"copy": "copied", "thumbs_up": "thumbs_up", "thumbs_down": "thumbs_down",
               "escalation": "escalated", "human_override": "human_override"}
FLAG_COLUMNS = (*SIGNAL_NAMES, "failure_candidate")


@dataclass
class DetectResult:
    sessions: int = 0
    turns: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(FLAG_COLUMNS, 0))

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "turns": self.turns, **self.counts}


_detectors: dict = {}


def get_detector():
    """One detector per process and configuration: the encoder takes seconds to load."""
    key = (settings.SIGNALS_SEMANTIC, settings.SIGNALS_REPHRASE_THRESHOLD)
    if key not in _detectors:
        from rephrase import RephraseDetector

        kwargs = {"semantic": settings.SIGNALS_SEMANTIC}
        if settings.SIGNALS_REPHRASE_THRESHOLD is not None:
            kwargs["threshold"] = settings.SIGNALS_REPHRASE_THRESHOLD
        _detectors[key] = RephraseDetector(**kwargs)
    return _detectors[key]


def is_failure_candidate(flags: dict[str, bool]) -> bool:
    return (flags["human_override"] or flags["rephrased"]
            or (settings.SIGNALS_FAILURE_ON_THUMBS_DOWN and flags["thumbs_down"])
            or (settings.SIGNALS_FAILURE_ON_ESCALATION and flags["escalated"]))


# Turn rows as tuples: (id, external_id, session_id, timestamp, response_timestamp, query)
ID, EXT, SESSION, TS, RESP_TS, QUERY = range(6)


def _gap_seconds(turn: tuple, nxt: tuple) -> float | None:
    """From the moment the answer was served (or the query, if unknown) to the next query."""
    start = turn[RESP_TS] or turn[TS]
    if start is None or nxt[TS] is None:
        return None
    return (nxt[TS] - start).total_seconds()


def _load(session_ids: list[int]):
    turns = (Turn.objects.filter(session_id__in=session_ids)
             .order_by("session_id", F("timestamp").asc(nulls_last=True), F("position").asc(nulls_last=True), "id")
             .values_list("id", "external_id", "session_id", "timestamp", "response_timestamp", "query"))
    events: dict[int, list[tuple]] = defaultdict(list)
    for e in (Event.objects.filter(turn__session_id__in=session_ids).order_by("timestamp", "id")
              .values_list("turn_id", "id", "type", "timestamp", "actor", "reason", "corrected_response")):
        events[e[0]].append(e)
    return list(turns), events


def _detect_batch(session_ids: list[int], detector) -> list[tuple[int, dict, str, dict]]:
    """[(turn id, flags, corrected response, evidence)] for every turn of these sessions."""
    window = settings.SIGNALS_WINDOW_SECONDS
    turns, events = _load(session_ids)

    # (turn, next turn) pairs inside the window, scored in one batch across sessions.
    nexts: dict[int, tuple[tuple, float | None]] = {}
    pairs: list[tuple[tuple, tuple, float | None]] = []
    for turn, nxt in zip(turns, turns[1:]):
        if nxt[SESSION] != turn[SESSION]:
            continue
        gap = _gap_seconds(turn, nxt)
        nexts[turn[ID]] = (nxt, gap)
        if gap is None or gap <= window:
            pairs.append((turn, nxt, gap))
    scores = detector.score_pairs([(t[QUERY], n[QUERY]) for t, n, _ in pairs]) if pairs else []
    scored = {t[ID]: (n, gap, s) for (t, n, gap), s in zip(pairs, scores)}

    out = []
    for turn in turns:
        flags = dict.fromkeys(SIGNAL_NAMES, False)
        evidence: dict = {}
        corrected = ""
        for _, event_id, etype, ts, actor, reason, corrected_response in events.get(turn[ID], ()):
            name = EVENT_FLAGS.get(etype)
            if name is None:
                continue
            flags[name] = True
            ev = {"event_id": event_id}
            if ts:
                ev["timestamp"] = ts.isoformat()
            if actor:
                ev["actor"] = actor
            if reason:
                ev["reason"] = reason
            evidence.setdefault(name, []).append(ev)
            if etype == "human_override":
                corrected = corrected_response  # the latest override wins (events are in time order)
        hit = scored.get(turn[ID])
        if hit is not None:
            nxt, gap, s = hit
            name = "rephrased" if detector.is_rephrase(s) else "followed_up"
            flags[name] = True
            evidence[name] = {"next_turn_id": nxt[EXT], "similarity": round(s.score, 4),
                              "lexical": round(s.lexical, 4),
                              "semantic": None if s.semantic is None else round(s.semantic, 4),
                              "stage": s.stage, "gap_seconds": gap, "threshold": detector.threshold,
                              "next_query": nxt[QUERY][:300]}
        elif not (flags["copied"] or flags["thumbs_up"]):
            flags["abandoned"] = True
            following = nexts.get(turn[ID])
            evidence["abandoned"] = (
                {"last_turn_of_session": True} if following is None
                else {"next_turn_id": following[0][EXT], "gap_seconds": following[1], "window_seconds": window}
            )
        flags["failure_candidate"] = is_failure_candidate(flags)
        out.append((turn[ID], flags, corrected, evidence))
    return out


def _write(session_ids: list[int], rows: list[tuple[int, dict, str, dict]]) -> None:
    if connection.vendor != "postgresql":
        TurnSignals.objects.bulk_create(
            [TurnSignals(turn_id=tid, corrected_response=corr, evidence=ev, **flags) for tid, flags, corr, ev in rows],
            batch_size=1000, update_conflicts=True, unique_fields=["turn"],
            update_fields=[*FLAG_COLUMNS, "corrected_response", "evidence", "detected_at"],
        )
        return
    # The sessions are claimed (row-locked) by this transaction: replacing their signals is safe.
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    now = timezone.now().isoformat()
    w.writerows((tid, *("t" if flags[c] else "f" for c in FLAG_COLUMNS), corr, orjson.dumps(ev).decode(), now)
                for tid, flags, corr, ev in rows)
    buf.seek(0)
    with connection.cursor() as c:
        c.execute("DELETE FROM production_turnsignals WHERE turn_id = ANY(%s)", [[r[0] for r in rows]])
        c.copy_expert(
            f"COPY production_turnsignals (turn_id, {', '.join(FLAG_COLUMNS)}, corrected_response, evidence, "
            f"detected_at) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (corrected_response))", buf)


def signals_detect(*, full: bool = False, batch_sessions: int = 2000, progress=None) -> DetectResult:
    """Detect signals for every dirty session (every session with full=True)."""
    detector = get_detector()
    result = DetectResult()
    last_id = 0
    while True:
        with transaction.atomic():
            # Claim a batch; ingest re-dirtying one of them meanwhile waits for our commit and
            # then leaves it dirty for the next run.
            todo = Session.objects.all() if full else Session.objects.filter(dirty=True)
            ids = list(todo.select_for_update(skip_locked=True).filter(id__gt=last_id).order_by("id")
                       .values_list("id", flat=True)[:batch_sessions])
            if not ids:
                break
            last_id = ids[-1]
            rows = _detect_batch(ids, detector)
            _write(ids, rows)
            Session.objects.filter(id__in=ids).update(dirty=False)
        result.sessions += len(ids)
        result.turns += len(rows)
        for _, flags, _, _ in rows:
            for name in FLAG_COLUMNS:
                result.counts[name] += flags[name]
        if progress:
            progress(len(ids))
    return result
