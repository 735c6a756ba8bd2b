"""The mirroring proxy (issue #20 item 2): the user's answer is the upstream's, byte for byte and as it
arrives; every call is a turn; a fixed share of sessions is mirrored to a candidate after the answer;
the proxy never waits on the database (full queues drop shadow calls and spool turns; spooled turns
are ingested later). The turns land in the test database (PostgreSQL under scripts/test.sh)."""
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
import pytest
from django.core.management import call_command
from fake_openai import FakeOpenAI
from proxy_helpers import ChatUpstream, ServedProxy, answer_for, free_port

from production.models import MirroredAnswer, Turn
from proxy.calls import Call, session_in_shadow
from proxy.recorder import Recorder, Shadow
from proxy.server import ProxyApp
from proxy.services import ProxyConfigError, shadows_parse
from releases.models import Release

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parent.parent
SALT = "test-salt"


@pytest.fixture
def upstream():
    up = ChatUpstream()
    yield up
    up.close()


@pytest.fixture
def candidate(settings):
    settings.OPENAI_API_KEY = "test-key"
    settings.LLM_BACKOFF_SECONDS = 0
    # a release at a base URL of its own gets only the key it names (never OPENAI_API_KEY)
    settings.RELEASE_API_KEYS = {**settings.RELEASE_API_KEYS, "CAND_1_KEY": "cand-key"}
    with FakeOpenAI(responder=lambda body: "candidate says: " + body["messages"][-1]["content"]) as fake:
        Release.objects.create(name="cand-1", model="cand-model", base_url=fake.url, api_key_env="CAND_1_KEY")
        yield fake


def proxy_for(upstream, tmp_path, shadows=(), **kw) -> ServedProxy:
    recorder = Recorder(source="web-app", spool_dir=tmp_path / "spool", shadows=list(shadows), salt=SALT,
                        flush_seconds=0.05, **kw)
    recorder.start()
    return ServedProxy(ProxyApp(upstream=upstream.url, recorder=recorder), recorder)


def chat(stream=False, user="u-1", text="how do I reset my password"):
    return {"model": "served-model", "stream": stream, "user": user,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}


def test_plain_and_streamed_answers_are_the_upstreams_bytes_and_every_call_is_a_turn(upstream, tmp_path):
    proxy = proxy_for(upstream, tmp_path)
    try:
        with httpx.Client(timeout=30) as http:
            results = {}
            for stream in (False, True):
                body = chat(stream=stream, text=f"question stream={stream}")
                direct = http.post(upstream.url + "/chat/completions", json=body)
                via = http.post(proxy.url + "/chat/completions", json=body, headers={"X-Session-Id": "sess-9"})
                assert via.status_code == direct.status_code == 200
                assert via.content == direct.content  # byte for byte
                assert via.headers["content-type"] == direct.headers["content-type"]
                results[stream] = via.headers["x-evalgap-turn-id"]
            models_direct, models_via = http.get(upstream.url + "/models"), http.get(proxy.url + "/models")
            assert models_via.content == models_direct.content
        # the real openai client, through the proxy, streamed
        client = openai.OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        parts = [c.choices[0].delta.content or "" for c in
                 client.chat.completions.create(**chat(stream=True, user="u-2", text="third"))]
        assert "".join(parts) == answer_for(chat(text="third"))
    finally:
        proxy.stop()

    turns = {t.external_id: t for t in Turn.objects.select_related("session", "source")}
    assert len(turns) == 3  # /v1/models is passed through, not recorded
    plain, streamed = turns[results[False]], turns[results[True]]
    assert plain.source.name == "web-app" and plain.session.external_id == "sess-9"
    assert plain.query == "question stream=False" and plain.response == answer_for(chat(text="question stream=False"))
    assert streamed.response == answer_for(chat(text="question stream=True"))
    assert streamed.metadata["proxy"] == {"status": 200, "stream": True, "messages": 2}
    assert plain.model == "served-model" and plain.user_id == "u-1"
    assert plain.timestamp <= plain.response_timestamp and plain.latency_ms >= 0
    third = next(t for t in turns.values() if t.query == "third")
    assert third.session.external_id == "u-2"  # no X-Session-Id: the request's user


def test_stream_reaches_the_user_as_it_arrives_and_the_candidate_is_asked_only_after(upstream, candidate,
                                                                                      tmp_path):
    # given every session mirrored, and an upstream that holds its stream after the first chunk
    proxy = proxy_for(upstream, tmp_path, shadows=shadows_parse(["cand-1=100"]))
    upstream.hold = threading.Event()
    try:
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", proxy.url + "/chat/completions", json=chat(stream=True)) as r:
                chunks = r.iter_raw()
                first = next(chunks)
                # then the first chunk is already with the user, and no candidate has been asked
                assert first.startswith(b"data: ") and b"chat.completion.chunk" in first
                assert candidate.requests == []
                upstream.hold.set()
                rest = b"".join(chunks)
        assert rest.endswith(b"data: [DONE]\n\n")
    finally:
        proxy.stop()
    turn = Turn.objects.get()
    mirrored = MirroredAnswer.objects.get()
    assert (mirrored.turn_id, mirrored.release) == (turn.pk, "cand-1")
    assert mirrored.response == "candidate says: how do I reset my password"
    # the candidate got the messages the served model got, under its own model name
    assert [r["body"]["messages"] for r in candidate.requests] == [upstream.requests[0]["messages"]]
    assert candidate.requests[0]["body"]["model"] == "cand-model"


def test_an_upstream_error_is_passed_through_recorded_and_not_mirrored(upstream, candidate, tmp_path):
    proxy = proxy_for(upstream, tmp_path, shadows=shadows_parse(["cand-1=100"]))
    body = {**chat(), "model": "rate-limited"}
    try:
        with httpx.Client(timeout=30) as http:
            direct = http.post(upstream.url + "/chat/completions", json=body)
            via = http.post(proxy.url + "/chat/completions", json=body)
    finally:
        proxy.stop()
    assert via.status_code == direct.status_code == 429 and via.content == direct.content
    turn = Turn.objects.get()
    assert turn.response == "" and turn.metadata["proxy"]["status"] == 429
    assert candidate.requests == [] and MirroredAnswer.objects.count() == 0


def test_session_sampling_is_a_stable_salted_share_per_release():
    sessions = [f"s-{i}" for i in range(20_000)]
    in_a = {s for s in sessions if session_in_shadow(salt=SALT, release="a", session_id=s, percent=5)}
    assert abs(len(in_a) / len(sessions) - 0.05) < 0.006  # binomial sd 0.0015: four of them
    again = {s for s in sessions if session_in_shadow(salt=SALT, release="a", session_id=s, percent=5)}
    assert again == in_a
    other_salt = {s for s in sessions if session_in_shadow(salt="other", release="a", session_id=s, percent=5)}
    other_release = {s for s in sessions if session_in_shadow(salt=SALT, release="b", session_id=s, percent=5)}
    assert len(other_salt & in_a) < 0.2 * len(in_a) and len(other_release & in_a) < 0.2 * len(in_a)
    assert not any(session_in_shadow(salt=SALT, release="a", session_id=s, percent=0) for s in sessions[:1000])
    assert all(session_in_shadow(salt=SALT, release="a", session_id=s, percent=100) for s in sessions[:1000])


def test_mirrors_the_configured_share_of_sessions(upstream, candidate, tmp_path):
    proxy = proxy_for(upstream, tmp_path, shadows=shadows_parse(["cand-1=30"]))
    sessions = [f"conv-{i}" for i in range(30)]
    try:
        with httpx.Client(timeout=30) as http:
            for n in (1, 2):  # two calls in every session
                for s in sessions:
                    r = http.post(proxy.url + "/chat/completions", json=chat(text=f"{s} q{n}"),
                                  headers={"X-Session-Id": s})
                    assert r.status_code == 200
    finally:
        proxy.stop()
    assert Turn.objects.count() == 60
    mirrored = set(MirroredAnswer.objects.values_list("turn__session__external_id", flat=True))
    expected = {s for s in sessions if session_in_shadow(salt=SALT, release="cand-1", session_id=s, percent=30)}
    assert 0 < len(expected) < len(sessions)
    assert mirrored == expected
    # a mirrored session is mirrored on every call
    assert MirroredAnswer.objects.count() == 2 * len(expected)
    assert all(m.response == f"candidate says: {m.turn.query}" for m in MirroredAnswer.objects.select_related("turn"))


def call(i: int) -> Call:
    now = datetime.now(timezone.utc)
    body = json.dumps(chat(text=f"q{i}", user=f"user-{i}")).encode()
    answer = json.dumps({"model": "served-model", "choices": [{"message": {"content": f"a{i}"}}]}).encode()
    return Call(turn_id=f"t-{i}", request_body=body, session_header="", started_at=now, finished_at=now, status=200,
                content_type="application/json", chunks=[answer])


def test_full_queues_drop_shadow_calls_counted_and_spool_turns_never_lost(candidate, tmp_path):
    # given a queue of 2 calls and one of 1 shadow call, and no thread yet taking from them
    recorder = Recorder(source="web-app", spool_dir=tmp_path / "spool", shadows=shadows_parse(["cand-1=100"]),
                        salt=SALT, queue_size=2, shadow_queue_size=1, flush_seconds=0.05)
    # when five calls finish
    for i in range(5):
        recorder.submit(call(i))
    # then three turns are on disk at once, their shadow calls dropped and counted
    counters = recorder.counters.as_dict()
    assert (counters["calls"], counters["turns_spooled"], counters["shadow_dropped"]) == (5, 3, 3)
    assert len(recorder.spool.files()) == 3
    assert Turn.objects.count() == 0
    # when the threads run: the dispatcher, the writer, the candidate's workers
    recorder.start()
    recorder.stop()
    # then every turn is stored and the spool is empty; every shadow call was asked or dropped, counted
    assert sorted(Turn.objects.values_list("external_id", flat=True)) == [f"t-{i}" for i in range(5)]
    assert recorder.spool.files() == []
    counters = recorder.counters.as_dict()
    assert counters["shadow_queued"] + counters["shadow_dropped"] == 5 and counters["shadow_dropped"] >= 3
    assert MirroredAnswer.objects.count() == counters["shadow_answered"] == counters["shadow_queued"] >= 1


def test_turns_spooled_while_the_database_is_down_are_ingested_later(upstream, tmp_path):
    # given the proxy command running against a database that does not answer
    spool, port = tmp_path / "spool", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL_FILE", "DATABASE_MIGRATE_URL_FILE")}
    env.update(DATABASE_URL="postgres://nobody:x@127.0.0.1:9/none", DJANGO_SECRET_KEY="test-proxy-subprocess")
    proc = subprocess.Popen([sys.executable, "manage.py", "proxy", "--listen", f"127.0.0.1:{port}",
                             "--upstream", upstream.url, "--source", "web-app", "--spool-dir", str(spool), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with httpx.Client(timeout=30) as http:
            while proc.poll() is None:  # until it listens (Django and openai take seconds to import)
                try:
                    http.get(f"http://127.0.0.1:{port}/_evalgap/stats")
                    break
                except httpx.ConnectError:
                    threading.Event().wait(0.2)
            # when users call it
            for i in range(3):
                r = http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat(text=f"down {i}"))
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == answer_for(
                    chat(text=f"down {i}"))
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    stats = json.loads(out.decode().strip().splitlines()[-1])
    assert stats["calls"] == 3 and stats["turns_written"] == 0 and stats["lines_spooled"] == 3
    assert Turn.objects.count() == 0 and list(spool.glob("*.jsonl"))
    # when the database is back and the spool is drained
    call_command("proxy", "--source", "web-app", "--drain-spool", "--spool-dir", str(spool))
    # then every call is a turn, and the spool is empty
    assert sorted(Turn.objects.values_list("query", flat=True)) == ["down 0", "down 1", "down 2"]
    assert not list(spool.glob("*.jsonl"))


def test_shadow_flags_name_what_is_wrong(db):
    Release.objects.create(name="known", model="m")
    for spec, message in (("known", "expected RELEASE=PERCENT"), ("known=abc", "PERCENT must be a number"),
                          ("known=150", "from 0 to 100"), ("nope=5", "no release named 'nope'")):
        with pytest.raises(ProxyConfigError, match=message):
            shadows_parse([spec])


def test_the_command_refuses_a_shadow_share_for_a_source_not_allowed_to_mirror(candidate, settings):
    """Ingest would reject every mirrored answer of a source not in SHADOW_MIRROR_SOURCES: the proxy
    says so when it starts instead of dropping them all into the rejected lines."""
    from django.core.management import CommandError, call_command

    settings.SHADOW_MIRROR_SOURCES = ["another-app"]
    with pytest.raises(CommandError, match="SHADOW_MIRROR_SOURCES"):
        call_command("proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9/v1", "--source", "web-app",
                     "--shadow", "cand-1=5")
