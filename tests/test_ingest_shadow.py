"""Mirrored shadow answers (#9): `shadow` lines in the production log become MirroredAnswer rows,
attached to their turn like detached events, before or after it. Run on both databases."""
import io
import json

import pytest
from django.core.management import call_command

from production.models import MirroredAnswer, RejectedLine, Turn
from production.selectors import mirrored_answers

TURN = {"id": "t-1", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "q", "response": "served"}


def jl(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def shadow(turn_id="t-1", release="cand-a", response="candidate answer", **more) -> dict:
    return {"type": "shadow", "turn_id": turn_id, "release": release, "response": response, **more}


def ingest(path, source="mirror"):
    out = io.StringIO()
    call_command("ingest", str(path), "--source", source, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1000, 2])
def test_shadow_lines_before_and_after_their_turn_are_stored_and_attached(tmp_path, settings, batch_size):
    # given: a mirrored answer before its turn, one after, two releases on one turn, a repeat, and one
    # whose turn comes in a later file
    settings.INGEST_BATCH_SIZE = batch_size
    path = tmp_path / "log.jsonl"
    path.write_bytes(jl(
        shadow("t-1", "cand-a", "before the turn", latency_ms=812),
        TURN,
        {**TURN, "id": "t-2", "timestamp": "2026-10-01T09:01:00Z"},
        shadow("t-2", "cand-a", "after the turn"),
        shadow("t-2", "cand-b", ""),
        shadow("t-2", "cand-a", "a repeat: the first line wins"),
        shadow("t-later", "cand-a", "its turn is in the next file"),
    ))

    # when
    summary = ingest(path)

    # then
    assert summary == {"read": 7, "created": 2, "duplicates": 1, "rejected": 0, "events": 0, "shadow": 4}
    got = {(m.turn_external_id, m.release): (m.response, m.latency_ms, m.turn.external_id if m.turn else None)
           for m in MirroredAnswer.objects.select_related("turn")}
    assert got == {
        ("t-1", "cand-a"): ("before the turn", 812.0, "t-1"),
        ("t-2", "cand-a"): ("after the turn", None, "t-2"),
        ("t-2", "cand-b"): ("", None, "t-2"),
        ("t-later", "cand-a"): ("its turn is in the next file", None, None),
    }
    # and the turn of the last one arrives later
    later = tmp_path / "later.jsonl"
    later.write_bytes(jl({**TURN, "id": "t-later"}))
    assert ingest(later)["shadow"] == 0
    assert MirroredAnswer.objects.get(turn_external_id="t-later").turn.external_id == "t-later"
    # and the same file again stores nothing new: every line is a duplicate
    assert ingest(path) == {"read": 7, "created": 0, "duplicates": 7, "rejected": 0, "events": 0, "shadow": 0}
    assert MirroredAnswer.objects.count() == 4


BAD_SHADOWS = [
    (shadow(turn_id=None), "turn_id: missing required field"),
    (shadow(turn_id=" "), "turn_id: must not be empty"),
    (shadow(turn_id="x" * 256), "turn_id: longer than 255 characters (256)"),
    (shadow(release=None), "release: missing required field"),
    (shadow(release="r" * 201), "release: longer than 200 characters (201)"),
    ({"type": "shadow", "turn_id": "t-1", "release": "cand-a"}, 'response: missing required field (it may be "")'),
    (shadow(response=["a"]), "response: expected a string, got list"),
    (shadow(response="a\u0000b"), "response: contains a NUL character (\\u0000), which cannot be stored"),
    (shadow(latency_ms="fast"), "latency_ms: expected a number, got str"),
    (shadow(latency_ms=True), "latency_ms: expected a number, got bool"),
]


@pytest.mark.django_db
def test_bad_shadow_lines_are_rejected_with_their_line_number_and_reason(tmp_path):
    body = jl(TURN)
    for bad, _ in BAD_SHADOWS:
        body += jl(bad)
    body += jl(shadow(release="good"))
    path = tmp_path / "log.jsonl"
    path.write_bytes(body)

    summary = ingest(path)

    assert summary == {"read": len(BAD_SHADOWS) + 2, "created": 1, "duplicates": 0, "rejected": len(BAD_SHADOWS),
                       "events": 0, "shadow": 1}
    assert dict(RejectedLine.objects.values_list("line_no", "reason")) == {
        2 + i: reason for i, (_, reason) in enumerate(BAD_SHADOWS)}
    assert list(MirroredAnswer.objects.values_list("release", flat=True)) == ["good"]


@pytest.mark.django_db
def test_shadow_lines_through_the_api_and_not_in_csv(api, tmp_path):
    resp = api.post("/api/ingest/?source=api-mirror", content_type="application/x-ndjson",
                    data=jl(TURN, shadow(latency_ms=95.5)))
    assert resp.json() == {"read": 2, "created": 1, "duplicates": 0, "rejected": 0, "events": 0, "shadow": 1}
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("type,turn_id,release,response\nshadow,t-1,cand-a,x\n")
    assert ingest(csv_path, source="csv-mirror")["rejected"] == 1
    assert RejectedLine.objects.get().reason == (
        "type: shadow lines are not supported in CSV; send them as JSON lines")


@pytest.mark.django_db
def test_the_shadow_app_reads_new_mirrored_answers_by_the_last_id_it_saw(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(jl(TURN, shadow(release="a"), shadow(release="b"), shadow(release="c")))
    ingest(path)
    every = list(mirrored_answers())
    assert [m.release for m in every] == ["a", "b", "c"]
    assert [m.release for m in mirrored_answers(since_id=every[0].id)] == ["b", "c"]
    assert {m.turn.query for m in every} == {"q"} and Turn.objects.count() == 1


def test_the_chunker_keeps_the_first_shadow_line_of_a_turn_and_release():
    # The database alone cannot promise it inside one chunk: a single INSERT .. ON CONFLICT DO NOTHING
    # keeps whichever row its plan meets first (a hash join reorders them).
    from production.contract import ParsedShadow
    from production.services.ingest.chunks import chunked

    items = [(1, ParsedShadow("t-1", "a", "first", None)), (2, ParsedShadow("t-1", "b", "other release", None)),
             (3, ParsedShadow("t-1", "a", "repeat", None))]
    (chunk,) = list(chunked(items, batch_size=100))
    assert [(s.release, s.response) for s in chunk.shadows] == [("a", "first"), ("b", "other release")]
    assert (chunk.shadow_lines, chunk.duplicates, chunk.read) == ([1, 2], 1, 3)
