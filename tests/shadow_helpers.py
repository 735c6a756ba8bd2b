"""Builders shared by the shadow tests: production turns, a candidate release, fake judges that
read the two answers out of the real prompt, and pairs made directly for the report's statistics."""
from __future__ import annotations

import io
import json
import re
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

from django.apps import apps as django_apps
from django.core.management import call_command
from django.test import override_settings

from production.models import Session, Source, Turn
from production.services.ingest import source_get_or_create, turns_ingest_body
from releases.models import Release
from shadow.models import ShadowPair
from taxonomy.models import FailureMode

SEED_TAXONOMY = __import__("importlib").import_module("taxonomy.migrations.0002_seed_default_taxonomy").seed

GOOD = "[good]"  # a fair judge prefers the answer that carries this mark
# A slot of the judge prompt: opened and closed by the request's own boundary (judge-v2).
SLOT = re.compile(r"<<<BEGIN ([A-Z]{20}) ([A-Z' ]+?)>>>\n(.*?)\n<<<END \1 \2>>>", re.DOTALL)


def taxonomy() -> set[str]:
    if not FailureMode.objects.exists():
        SEED_TAXONOMY(django_apps, None)
    return set(FailureMode.objects.filter(active=True).values_list("code", flat=True))


def ingest_turns(records: list[dict], source: str = "shop") -> Source:
    src = source_get_or_create(name=source)
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    turns_ingest_body(source=src, body=body)
    return src


def day_log(day: date, sessions: int, turns_per_session: int = 2, prefix: str = "s", model: str = "served-model",
            answer: str = "served answer") -> list[dict]:
    """`sessions` conversations of `turns_per_session` turns each on `day`, with contexts."""
    out = []
    for s in range(sessions):
        for t in range(turns_per_session):
            stamp = datetime(day.year, day.month, day.day, 8, 0, tzinfo=timezone.utc) + timedelta(minutes=10 * s + t)
            out.append({"id": f"{prefix}{day:%m%d}-{s}-{t}", "session_id": f"{prefix}{day:%m%d}-{s}",
                        "timestamp": stamp.isoformat(), "query": f"question {t} of {prefix}{day:%m%d}-{s}",
                        "response": f"{answer} {t} for {prefix}{day:%m%d}-{s}", "model": model,
                        "contexts": [f"doc about {prefix}{day:%m%d}-{s}", "policy: returns within 30 days"]})
    return out


def release(name: str = "cand-1", url: str = "", **kw) -> Release:
    return Release.objects.create(name=name, model=kw.pop("model", "cand-model"), base_url=url,
                                  system_prompt=kw.pop("system_prompt", "You are the candidate."), **kw)


def slots_in(body: dict) -> dict[str, str]:
    """{slot name: text} from a judge request built from the real prompt, read with the boundary the
    request itself declares (the first one in its user message)."""
    text = body["messages"][-1]["content"]
    found = SLOT.findall(text)
    boundary = found[0][0] if found else None
    return {name: value for b, name, value in found if b == boundary}


@contextmanager
def judge_server(**overrides):
    """A local judge endpoint (JUDGE_* pointed at it, no OPENAI_* fallback, fast backoff)."""
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server, override_settings(
            JUDGE_BASE_URL=server.url, JUDGE_API_KEY="sk-judge", JUDGE_MODEL="judge-x", OPENAI_BASE_URL="",
            OPENAI_API_KEY="", LLM_BACKOFF_SECONDS=0.01, **overrides):
        yield server


def answers_in(body: dict) -> dict[str, str]:
    """{"A": text, "B": text} from a judge request built from the real prompt."""
    return {name[-1]: text for name, text in slots_in(body).items() if name in ("ANSWER A", "ANSWER B")}


def judgement(verdict: str, rationale: str = "compared", modes_a=(), modes_b=()) -> str:
    return json.dumps({"rationale": rationale, "verdict": verdict, "failure_modes_a": list(modes_a),
                       "failure_modes_b": list(modes_b)})


def fair_judge(body: dict) -> str:
    """Prefers the answer marked GOOD, whichever side it is on; a tie when neither or both are."""
    a = answers_in(body)
    good_a, good_b = GOOD in a.get("A", ""), GOOD in a.get("B", "")
    verdict = "A" if good_a and not good_b else "B" if good_b and not good_a else "tie"
    bad = "FAITHFULNESS.HALLUCINATION" if verdict != "tie" else None
    return judgement(verdict, "the marked answer is right",
                     modes_a=[bad] if bad and verdict == "B" else [], modes_b=[bad] if bad and verdict == "A" else [])


def first_picker(body: dict) -> str:
    return judgement("A", "the first answer is better")


def run_json(*args, **kwargs) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out, stderr=kwargs.pop("stderr", io.StringIO()), **kwargs)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def make_pairs(rel: Release, outcomes_by_day: dict[date, list[str]], *, per_session: int = 1,
               modes: dict[int, tuple] | None = None, cand_len: int = 40, served_len: int = 40,
               source: str = "pairs-src") -> list[ShadowPair]:
    """Judged pairs straight into the database: one turn per outcome, `per_session` turns per
    conversation. `modes[i]` = (candidate's codes, served's codes) for the i-th pair."""
    src = source_get_or_create(name=source)
    pairs, i = [], 0
    for day, outcomes in sorted(outcomes_by_day.items()):
        for k, outcome in enumerate(outcomes):
            sid = f"{rel.name}-{day}-{k // per_session}"
            session, _ = Session.objects.get_or_create(source=src, external_id=sid)
            stamp = datetime(day.year, day.month, day.day, 9, tzinfo=timezone.utc) + timedelta(seconds=k)
            turn = Turn.objects.create(source=src, session=session, external_id=f"{sid}-{k}", timestamp=stamp,
                                       query="q", response="s" * served_len, model="served-model")
            cm, sm = (modes or {}).get(i, ((), ()))
            pairs.append(ShadowPair(turn=turn, release=rel, origin="replay", session=session, day=day,
                                    candidate_answer="c" * cand_len, outcome=outcome, candidate_failure_modes=list(cm),
                                    served_failure_modes=list(sm)))
            i += 1
    return ShadowPair.objects.bulk_create(pairs)
