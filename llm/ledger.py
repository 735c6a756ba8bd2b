"""One spend ledger for every LLM purpose (replay, judge, grader, generation, calibration, audit).

Each request is reserved in the database before it is sent, at its worst case (every byte of the
prompt a token, plus `max_tokens` of answer, at the endpoint's prices), and settled with the usage the
server reported, which releases the unused part. The reservation is one conditional UPDATE of the
purpose's row for the UTC day, so concurrent runs, processes, retries and re-executions share one
cap (`<PURPOSE>_MAX_USD_PER_DAY`) and none can pass it on what it was about to ask:

    spent + reserved + this request's worst case <= cap

A request refused by the server (an HTTP error: nothing was answered) releases its reservation. A
request whose fate is unknown (a timeout, a dropped connection) keeps it: it may have been billed, so
it is counted at its worst case ("unknown"); both may be asked again under the same key. A request
whose holder was killed mid-way stays "reserved": counted, and never sent again under its key (it
may have been answered), like one that was answered ("settled").

Models are imported inside the functions: llm.client (which imports this) may be imported before
the app registry is ready.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

PURPOSES = ("replay", "judge", "grader", "generation", "calibration", "audit")
USD = Decimal("0.000001")

# The requests of one `map_concurrent` share their caller's database connection (so a test's
# transaction, the SQLite demo and the caller's job all see the same rows); a psycopg connection is
# not safe for two threads at once, so every ledger statement takes this lock.
db_lock = threading.RLock()


class BudgetExceeded(Exception):
    """The spending cap was reached before this request; it was not sent."""


class CapReached(BudgetExceeded):
    """A purpose's daily cap: `setting` names it, `left` is what it had left for this request."""

    def __init__(self, purpose: str, cap: Decimal, left: Decimal, need: Decimal):
        self.purpose, self.cap, self.left, self.need = purpose, cap, left, need
        self.setting = cap_setting(purpose)
        super().__init__(f"{self.setting} of ${cap} reached: ${max(left, Decimal(0)):.6f} left today, this request "
                         f"could cost up to ${need:.6f}")


class AlreadyAsked(Exception):
    """This exact request (its key) was reserved before, by this job or one that died: it may have been
    answered and paid, so it is not sent again."""


@dataclass
class Spend:
    """Who pays for a request: the purpose whose cap it counts against, the job it is for
    ("app.Model:pk": the job's cost is the sum of its entries), an optional key that must never be
    asked twice, and `beat`, called on every attempt (the job's heartbeat moves per request)."""

    purpose: str
    job: str = ""
    key: str | None = None
    beat: Callable[[], None] | None = None

    def __post_init__(self):
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose: expected one of {', '.join(PURPOSES)}, got {self.purpose!r}")


def job_label(model, pk) -> str:
    return f"{model._meta.label}:{pk}"


def cap_setting(purpose: str) -> str:
    return f"{purpose.upper()}_MAX_USD_PER_DAY"


def cap_usd(purpose: str) -> Decimal | None:
    """The purpose's daily cap (None: no cap)."""
    value = getattr(settings, cap_setting(purpose), None)
    return None if value is None else Decimal(str(value))


def today() -> date:
    return timezone.now().astimezone(dt_timezone.utc).date()


def worst_case_tokens(messages: list[dict]) -> int:
    """An upper bound of the prompt's tokens: a byte-level BPE token covers at least one byte, plus
    each message's framing (a few tokens) and the reply's priming."""
    size = 0
    for m in messages:
        content = m.get("content") or ""
        size += len(content.encode()) if isinstance(content, str) else len(str(content).encode())
        size += len(str(m.get("role", "")).encode()) + 4
    return size + 8


def spend_reserve(*, spend: Spend, usd: Decimal, model: str = "") -> int:
    """Reserve `usd` against the purpose's cap for today; returns the entry's id. Raises CapReached
    (nothing reserved) or AlreadyAsked (the key was reserved before)."""
    from .models import SpendDay, SpendEntry

    usd = Decimal(usd).quantize(USD)
    day = today()
    cap = cap_usd(spend.purpose)
    with db_lock, transaction.atomic():
        SpendDay.objects.bulk_create([SpendDay(purpose=spend.purpose, day=day)], ignore_conflicts=True)
        rows = SpendDay.objects.filter(purpose=spend.purpose, day=day)
        if cap is not None:
            # The check and the reservation are one statement: the row lock orders concurrent ones.
            rows = rows.alias(total=F("spent_usd") + F("reserved_usd")).filter(total__lte=cap - usd)
        if not rows.update(reserved_usd=F("reserved_usd") + usd, requests=F("requests") + 1):
            row = SpendDay.objects.get(purpose=spend.purpose, day=day)
            raise CapReached(spend.purpose, cap, cap - row.spent_usd - row.reserved_usd, usd)
        try:
            with transaction.atomic():
                entry = SpendEntry.objects.create(purpose=spend.purpose, day=day, job=spend.job, key=spend.key,
                                                  model=model[:200], reserved_usd=usd)
        except IntegrityError:
            raise AlreadyAsked(f"{spend.purpose} request {spend.key!r} was asked before (by this job or one that "
                               f"died): not asked again") from None
    return entry.pk


def spend_settle(*, entry_id: int, cost_usd: Decimal, prompt_tokens: int, completion_tokens: int,
                 attempts: int) -> None:
    """The server answered: the entry costs what its usage says, the rest of the reservation is freed."""
    _close(entry_id, "settled", Decimal(cost_usd).quantize(USD), prompt_tokens, completion_tokens, attempts)


def spend_release(*, entry_id: int, attempts: int) -> None:
    """The server refused the request (an HTTP error): nothing was answered, the reservation is freed."""
    _close(entry_id, "released", Decimal(0), 0, 0, attempts)


def spend_keep(*, entry_id: int, attempts: int) -> None:
    """The request's fate is unknown (timed out, connection dropped): counted at its worst case."""
    from .models import SpendEntry

    with db_lock:
        reserved = SpendEntry.objects.filter(pk=entry_id).values_list("reserved_usd", flat=True).first()
    if reserved is not None:
        _close(entry_id, "unknown", reserved, 0, 0, attempts)


def _close(entry_id, status, cost, prompt_tokens, completion_tokens, attempts) -> None:
    from .models import SpendDay, SpendEntry

    with db_lock, transaction.atomic():
        entry = SpendEntry.objects.select_for_update().filter(pk=entry_id, status="reserved").first()
        if entry is None:
            return  # closed already
        SpendEntry.objects.filter(pk=entry_id).update(
            status=status, cost_usd=cost, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            attempts=attempts, settled_at=timezone.now())
        SpendDay.objects.filter(purpose=entry.purpose, day=entry.day).update(
            reserved_usd=F("reserved_usd") - entry.reserved_usd, spent_usd=F("spent_usd") + cost)


# --- reads -------------------------------------------------------------------------------------

def job_spend(job: str) -> dict:
    """What a job's requests cost across all its executions: settled cost, what is still reserved
    (requests whose holder died mid-way), tokens and requests."""
    from .models import SpendEntry

    with db_lock:
        rows = SpendEntry.objects.filter(job=job)
        settled = rows.filter(status__in=("settled", "unknown")).aggregate(c=Sum("cost_usd"), p=Sum("prompt_tokens"),
                                                          k=Sum("completion_tokens"), a=Sum("attempts"))
        reserved = rows.filter(status="reserved").aggregate(r=Sum("reserved_usd"))["r"] or Decimal(0)
        released = rows.filter(status="released").aggregate(a=Sum("attempts"))["a"] or 0
    return {"cost_usd": settled["c"] or Decimal(0), "reserved_usd": reserved,
            "prompt_tokens": settled["p"] or 0, "completion_tokens": settled["k"] or 0,
            "requests": (settled["a"] or 0) + released}


def spend_today(purpose: str) -> dict:
    """A purpose's day so far: spent, reserved, its cap and what is left (None: no cap)."""
    from .models import SpendDay

    row = SpendDay.objects.filter(purpose=purpose, day=today()).first()
    spent = row.spent_usd if row else Decimal(0)
    reserved = row.reserved_usd if row else Decimal(0)
    cap = cap_usd(purpose)
    return {"purpose": purpose, "setting": cap_setting(purpose), "cap_usd": cap, "spent_usd": spent,
            "reserved_usd": reserved, "left_usd": None if cap is None else max(cap - spent - reserved, Decimal(0)),
            "requests": row.requests if row else 0}
