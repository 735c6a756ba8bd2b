"""Builders for the evaluation tests: production turns with signals, releases, frozen test sets,
labelled items and offline runs, written straight to the database (no ingest, no Label Studio)."""
from __future__ import annotations

import hashlib
import itertools
from datetime import date, datetime, time, timedelta, timezone

from production.models import SIGNAL_NAMES, Session, Source, Turn, TurnSignals
from releases.models import Release
from testsets.models import TestItem, TestSet, TestSetVersion
from testsets.services.promotion import canonical
from testsets.services.versions import testset_freeze

_ids = itertools.count(1)
DAY0 = date(2026, 9, 1)


def source(name: str = "prod") -> Source:
    return Source.objects.get_or_create(name=name)[0]


def turns(*, model: str, n: int, failures: int = 0, day: date = DAY0, src: str = "prod", release: str | None = None,
          signals: dict[str, int] | None = None, session: str | None = None, detected: bool = True,
          extra: dict | None = None) -> list[Turn]:
    """n turns served by `model` (metadata.release = `release` if given) on `day`; the first
    `failures` are failure candidates; signals {name: k}: the first k carry that flag."""
    s = source(src)
    sess = Session.objects.get_or_create(source=s, external_id=session or f"sess-{next(_ids)}")[0]
    start = datetime.combine(day, time(9, 0), tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        k = next(_ids)
        meta = {"release": release} if release else {}
        rows.append(Turn(source=s, session=sess, external_id=f"t{k}", timestamp=start + timedelta(seconds=i),
                         query=f"question {k}", response=f"answer {k}", model=model, metadata={**meta, **(extra or {})}))
    Turn.objects.bulk_create(rows)
    if detected:
        sig = []
        for i, t in enumerate(rows):
            flags = {name: i < (signals or {}).get(name, 0) for name in SIGNAL_NAMES}
            sig.append(TurnSignals(turn=t, failure_candidate=i < failures, **flags))
        TurnSignals.objects.bulk_create(sig)
    return rows


def release(name: str, model: str | None = None, **kw) -> Release:
    return Release.objects.create(name=name, model=model or f"model-{name}", **kw)


def frozen_version(name: str, items: list[dict]) -> TestSetVersion:
    """A frozen version holding `items` (dicts of TestItem fields; defaults filled in)."""
    testset = TestSet.objects.get_or_create(name=name)[0]
    last = testset.versions.order_by("-number").first()
    draft = TestSetVersion.objects.create(testset=testset, number=(last.number + 1) if last else 1)
    rows = []
    for it in items:
        fields = {"source": "prod", "query": "q", "response": "", "reference_answer": "", "contexts": [],
                  "conversation": [], "verdict": "correct", "failure_modes": [], "stratum": "none",
                  "inclusion_probability": None, "provenance": {}, **it}
        rows.append(TestItem(version=draft, content_sha256=hashlib.sha256(canonical(fields)).hexdigest(), **fields))
    TestItem.objects.bulk_create(rows)
    return testset_freeze(name=name, note="evaluation test")


def item_for(turn: Turn, **kw) -> dict:
    """A test item that came from a production turn (key and provenance as promotion writes them)."""
    return {"key": f"turn:{turn.source.name}:{turn.external_id}", "source": turn.source.name, "query": turn.query,
            "response": turn.response, "reference_answer": kw.pop("reference_answer", f"reference for {turn.query}"),
            "provenance": {"source": turn.source.name, "turn_id": turn.external_id,
                           "session_id": turn.session.external_id, "model": turn.model}, **kw}
