"""Signal detection: judge each answer by what the user or an agent did next.

Works on dirty sessions only (ingest marks a session dirty when a turn or event arrives), in
batches; each batch claims its sessions and writes their signals in one transaction, so a
crash leaves them dirty and a re-run redoes them. The definitions (what each signal means, and
the version written on every row) are in ``production.signal_definitions``.

The pure part, ``detect_rows``, works on plain tuples and knows nothing of the database: the
detector evaluation runs it over the example log as JSON lines, so what is measured is what runs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.conf import settings

from ..signal_definitions import DEFINITION_VERSION, EVENT_SIGNALS, LEAVE_EVENTS, SIGNAL_NAMES
from . import failure_model as fm

FLAG_COLUMNS = (*SIGNAL_NAMES, "failure_candidate")

# Turn rows as tuples: (id, external_id, session_id, timestamp, response_timestamp, query)
ID, EXT, SESSION, TS, RESP_TS, QUERY = range(6)
# Event rows: (turn_id, id, type, timestamp, actor, reason, corrected_response)
E_TURN, E_ID, E_TYPE, E_TS, E_ACTOR, E_REASON, E_CORRECTED = range(7)
# Timestamps in both are epoch seconds (float) or None: cheaper to read and subtract than datetimes.


@dataclass(frozen=True)
class DetectConfig:
    window_seconds: float
    abandon_seconds: float
    failure_on_thumbs_down: bool
    failure_on_escalation: bool
    failure_probability: dict  # event signal -> P(answer failed); see settings
    # The fitted model's (intercept, coefficients in fm.FEATURES order), its version and re-ask
    # prior, when active parameters are stored (production.services.failure_model); else None.
    failure_model: tuple | None = None
    failure_model_version: int | None = None
    rephrase_prior: float | None = None

    @classmethod
    def from_settings(cls, *, fitted: bool = True) -> DetectConfig:
        active = fm.failure_model_active() if fitted else None
        model = fm.validate(active.coefficients) if active else None
        return cls(window_seconds=settings.SIGNALS_WINDOW_SECONDS, abandon_seconds=settings.SIGNALS_ABANDON_SECONDS,
                   failure_on_thumbs_down=settings.SIGNALS_FAILURE_ON_THUMBS_DOWN,
                   failure_on_escalation=settings.SIGNALS_FAILURE_ON_ESCALATION,
                   failure_probability=dict(settings.SIGNALS_FAILURE_PROBABILITY),
                   failure_model=model, failure_model_version=active.version if active else None,
                   rephrase_prior=(active.rephrase_prior if active and active.rephrase_prior is not None
                                   else settings.SIGNALS_REPHRASE_PRIOR))


@dataclass
class SignalRow:
    turn_id: int
    flags: dict
    corrected_response: str
    evidence: dict
    failure_probability: float


@dataclass
class DetectResult:
    sessions: int = 0
    turns: int = 0
    failure_model_version: int | None = None  # None: the stated weights computed failure_probability
    counts: dict = field(default_factory=lambda: dict.fromkeys(FLAG_COLUMNS, 0))

    def add(self, rows: list[SignalRow]) -> None:
        self.turns += len(rows)
        for r in rows:
            for name, on in r.flags.items():
                if on:
                    self.counts[name] += 1

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "turns": self.turns, **self.counts,
                "definition_version": DEFINITION_VERSION, "failure_model_version": self.failure_model_version}


_detectors: dict = {}


def get_detector(prior: float | None = None):
    """One detector per process and configuration: the encoder takes seconds to load. ``prior``:
    the re-ask base rate (default SIGNALS_REPHRASE_PRIOR; the fitted model's when active)."""
    prior = settings.SIGNALS_REPHRASE_PRIOR if prior is None else prior
    key = (settings.SIGNALS_SEMANTIC, settings.SIGNALS_REPHRASE_THRESHOLD, prior)
    if key not in _detectors:
        from rephrase import RephraseDetector

        _detectors[key] = RephraseDetector(
            semantic=settings.SIGNALS_SEMANTIC, threshold=settings.SIGNALS_REPHRASE_THRESHOLD,
            prior=prior, encoder_dir=settings.REPHRASE_ENCODER_DIR,
            threads=settings.REPHRASE_ENCODER_THREADS or None,
            # with the encoder loaded, fewer cached texts keep the process under 500 MB
            text_cache=4096 if settings.SIGNALS_SEMANTIC else 16_384)
    return _detectors[key]


def epoch(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def _seconds(later, earlier) -> float | None:
    if later is None or earlier is None:
        return None
    return round(later - earlier, 3)  # milliseconds: what the log's timestamps carry


def _leave_after(answered, until, leaves, limit: float):
    """The first leave event at most ``limit`` s after the answer and before the next query."""
    best = None
    for ev, on_turn in leaves:
        dt = _seconds(ev[E_TS], answered)
        if dt is None or dt < 0 or dt > limit or (until is not None and ev[E_TS] > until):
            continue
        if best is None or ev[E_TS] < best[0][E_TS]:
            best = (ev, on_turn, dt)
    return best


def detect_rows(turns: list[tuple], events: dict[int, list[tuple]], detector, cfg: DetectConfig) -> list[SignalRow]:
    """Signals for every turn of the given sessions.

    ``turns`` in session and conversation order; ``events`` by turn id, in time order.
    """
    window = cfg.window_seconds
    # (turn, next turn) pairs inside the window, scored in one batch across sessions.
    nexts: dict[int, tuple[tuple, float | None]] = {}
    pairs: list[tuple[tuple, tuple, float | None]] = []
    for turn, nxt in zip(turns, turns[1:]):
        if nxt[SESSION] != turn[SESSION]:
            continue
        gap = _seconds(nxt[TS], turn[RESP_TS] or turn[TS])
        nexts[turn[ID]] = (nxt, gap)
        if gap is None or gap <= window:
            pairs.append((turn, nxt, gap))
    scores = detector.score_pairs([(t[QUERY], n[QUERY]) for t, n, _ in pairs]) if pairs else []
    scored = {t[ID]: (n, gap, s) for (t, n, gap), s in zip(pairs, scores)}

    # Leave events of each session (on any of its turns): evidence for `abandoned`.
    leaves: dict[int, list] = defaultdict(list)
    if events:
        # Only the turns that carry a leave event are looked up (a pass over the batch, no tuple per turn).
        need = {turn_id for turn_id, evs in events.items() if any(ev[E_TYPE] in LEAVE_EVENTS for ev in evs)}
        ext_of = {t[ID]: (t[EXT], t[SESSION]) for t in turns if t[ID] in need} if need else {}
        for turn_id, evs in events.items():
            for ev in evs:
                if ev[E_TYPE] in LEAVE_EVENTS and turn_id in ext_of:
                    ext, session = ext_of[turn_id]
                    leaves[session].append((ev, ext))

    p_event = cfg.failure_probability
    counted = {"human_override": True, "thumbs_down": cfg.failure_on_thumbs_down,
               "escalated": cfg.failure_on_escalation}
    counted_on = [name for name, on in counted.items() if on]  # in this order: the product's order
    on_thumbs_down, on_escalation = cfg.failure_on_thumbs_down, cfg.failure_on_escalation
    threshold, prior = detector.threshold, detector.prior
    is_rephrase = detector.is_rephrase
    abandon_seconds = cfg.abandon_seconds
    model = cfg.failure_model
    blank = dict.fromkeys(SIGNAL_NAMES, False)
    events_get, scored_get, nexts_get = events.get, scored.get, nexts.get
    out = []
    append = out.append
    for turn in turns:
        tid = turn[ID]
        flags = blank.copy()
        evidence: dict = {}
        corrected = ""
        evs = events_get(tid)
        if evs:
            for ev in evs:
                name = EVENT_SIGNALS.get(ev[E_TYPE])
                if name is None:
                    continue
                flags[name] = True
                item = {"event_id": ev[E_ID]}
                if ev[E_TS] is not None:
                    item["timestamp"] = _iso(ev[E_TS])
                if ev[E_ACTOR]:
                    item["actor"] = ev[E_ACTOR]
                if ev[E_REASON]:
                    item["reason"] = ev[E_REASON]
                evidence.setdefault(name, []).append(item)
                if name == "human_override":
                    corrected = ev[E_CORRECTED]  # the latest override wins (events are in time order)
        not_failed = 1.0
        balanced = None
        hit = scored_get(tid)
        if hit is not None:
            nxt, gap, s = hit
            name = "rephrased" if is_rephrase(s) else "followed_up"
            flags[name] = True
            cos = s.cosine
            evidence[name] = {"next_turn_id": nxt[EXT], "probability": round(s.probability, 4),
                              "score": round(s.score, 4),
                              "cosine": None if cos is None else round(cos, 4),
                              "stage": s.stage, "gap_seconds": gap, "threshold": threshold, "prior": prior,
                              "next_query": nxt[QUERY][:300]}
            not_failed *= 1.0 - s.probability
            balanced = s.score
        elif not (flags["copied"] or flags["thumbs_up"]):
            following = nexts_get(tid)
            answered = turn[RESP_TS] or turn[TS]
            session = turn[SESSION]
            leave = (_leave_after(answered, following[0][TS] if following else None, leaves[session],
                                  abandon_seconds) if session in leaves else None)
            if leave is not None:
                ev, on_turn, dt = leave
                flags["abandoned"] = True
                evidence["abandoned"] = {"event_id": ev[E_ID], "event": ev[E_TYPE], "on_turn_id": on_turn,
                                         "seconds_after_answer": dt, "abandon_seconds": abandon_seconds}
            else:
                flags["session_ended"] = True
                evidence["session_ended"] = (
                    {"last_turn_of_session": True} if following is None
                    else {"next_turn_id": following[0][EXT], "gap_seconds": following[1], "window_seconds": window})
        if evs:  # only events set the flags counted here
            for name in counted_on:
                if flags[name]:
                    not_failed *= 1.0 - p_event[name]
        flags["failure_candidate"] = (flags["human_override"] or flags["rephrased"]
                                      or (on_thumbs_down and flags["thumbs_down"])
                                      or (on_escalation and flags["escalated"]))
        if model is not None:  # the fitted parameters replace the stated weights
            append(SignalRow(tid, flags, corrected, evidence, fm.logistic(*model, fm.features(flags, balanced))))
        else:
            append(SignalRow(tid, flags, corrected, evidence, 1.0 - not_failed))
    return out


def signals_detect(*, full: bool = False, batch_sessions: int | None = None, progress=None) -> DetectResult:
    """Detect signals for every dirty session (every session with full=True).

    Batches of 2,000 sessions, 1,000 with the encoder: the PostgreSQL pipeline holds three at once,
    and with the encoder loaded that keeps the process under 500 MB (benchmarks/README.md).
    """
    from .signals_store import run_batches

    cfg = DetectConfig.from_settings()
    detector = get_detector(cfg.rephrase_prior)
    result = run_batches(detector=detector, cfg=cfg, full=full,
                         batch_sessions=batch_sessions or (1000 if detector.semantic else 2000), progress=progress)
    result.failure_model_version = cfg.failure_model_version
    return result
