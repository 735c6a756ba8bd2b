"""What a pair's judge (and its human auditors) see of the conversation around the served turn."""
from __future__ import annotations

from production.models import Turn


def histories(turns: list[Turn], keep: int) -> dict[int, list[Turn]]:
    """For each turn, the turns before it in its session (at most `keep`), in one query."""
    if not turns or keep <= 0:
        return {t.pk: [] for t in turns}
    by_session: dict[int, list[Turn]] = {}
    for t in (Turn.objects.filter(session_id__in={t.session_id for t in turns})
              .only("id", "session_id", "timestamp", "position", "query", "response")
              .order_by("session_id", "timestamp", "position", "id")):
        by_session.setdefault(t.session_id, []).append(t)
    out = {}
    for turn in turns:
        session = by_session.get(turn.session_id, [])
        idx = next((k for k, t in enumerate(session) if t.pk == turn.pk), len(session))
        out[turn.pk] = session[max(0, idx - keep):idx]
    return out


def conversation(history: list[Turn]) -> list[dict]:
    """The conversation as the user saw it: their queries and the answers they were served."""
    out = []
    for prev in history:
        out.append({"role": "user", "content": prev.query})
        if prev.response:
            out.append({"role": "assistant", "content": prev.response})
    return out
