"""Query counts of the pages and list endpoints: each is measured on a small world, the world is
grown, and the page must then take no more queries than before (no query per row: an N+1 shows up
as a count that grows with the data), and never more than a fixed ceiling."""
from datetime import date, timedelta
from itertools import count as counter

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from production.models import Event, RejectedLine
from testsets.services.promotion import testset_promote
from testsets.services.versions import testset_freeze
from tests.factories import (AnnotationFactory, BatchItemFactory, ReleaseFactory, SessionFactory, TurnFactory,
                             TurnSignalsFactory)
from tests.shadow_helpers import make_pairs

pytestmark = pytest.mark.django_db
START = date(2026, 9, 1)
_days, _lines = counter(), counter(1)
CEILING = 40  # no page or list needs more, whatever the data


def grow(n: int) -> None:
    """n sessions of three turns: failure candidates labelled and promoted into a new frozen test-set
    version, events and rejected lines, and shadow pairs of a release."""
    for _ in range(n):
        session = SessionFactory()
        turns = [TurnFactory(session=session) for _ in range(3)]
        TurnSignalsFactory(turn=turns[0], failure_candidate=True, rephrased=True, evidence={"rephrased": {}})
        for t in turns[1:]:
            TurnSignalsFactory(turn=t, followed_up=True)
        AnnotationFactory(item=BatchItemFactory(turn=turns[0]))
        Event.objects.create(source=session.source, turn_external_id=turns[1].external_id, turn=turns[1],
                             type="copy")
        RejectedLine.objects.create(source=session.source, origin="test", line_no=next(_lines), reason="bad line")
    testset_promote()
    testset_freeze(name="production", note=f"grown by {n}")
    rel = ReleaseFactory(name="cand-1", shadow_enabled=True)
    make_pairs(rel, {START + timedelta(days=next(_days)): ["candidate_win", "served_win"] * n for _ in range(2)})


PAGES = ["/", "/testsets/", "/testsets/production/", "/testsets/production/v1/",
         "/testsets/production/changelog/?from=1&to=2", "/taxonomy/", "/shadow/", "/shadow/cand-1/",
         "/shadow/cand-1/pairs/", "/generation/report/"]
LISTS = ["/api/turns/", "/api/sessions/", "/api/events/", "/api/rejects/", "/api/failures/",
         "/api/labelling/batches/", "/api/labelling/annotations/", "/api/testsets/", "/api/releases/",
         "/api/shadow/pairs/", "/api/shadow/runs/", "/api/generation/report/"]


def count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx)


@pytest.fixture
def clients(admin):
    web, api = Client(), APIClient()
    web.force_login(admin)
    api.force_authenticate(admin)
    return {"web": web, "api": api}


@pytest.mark.parametrize("kind,url", [("web", u) for u in PAGES] + [("api", u) for u in LISTS])
def test_pages_and_lists_take_a_fixed_number_of_queries(clients, kind, url, django_assert_max_num_queries):
    # given a small world (two frozen versions), measured
    grow(1)
    grow(1)
    small = count(clients[kind], url)

    # when the world grows (more sessions, labels, versions, events, pairs)
    grow(5)

    # then the page takes no more queries than it did, under the ceiling
    with django_assert_max_num_queries(min(small, CEILING)):
        assert clients[kind].get(url).status_code == 200
