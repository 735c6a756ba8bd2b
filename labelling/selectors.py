"""Reads over labelling, for other apps and the pages: what people judged (the judgement of an
item, resolutions included), the conversation they saw, progress per project, failure modes in the
labels and their weighted production rates, and the picks on pairwise tasks."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet

from production.models import Turn, TurnSignals
from taxonomy.selectors import failure_mode_tree, resolve_code

from .agreement import agreement_report
from .models import Annotation, BatchItem, LabelStudioProject, PairwiseAnnotation, live_q
from .vocabulary import CANNOT_JUDGE, GENERATED, NONE, STRATUM_SIGNALS

# --- judgements --------------------------------------------------------------------------------


@dataclass
class Judgement:
    """What people decided about one item: an admin's resolution, else the annotators' majority."""

    verdict: str
    failure_modes: list[str]
    reference_answer: str
    annotations: list[Annotation] = field(default_factory=list)
    resolved_by: str = ""
    resolution_reason: str = ""

    @property
    def cannot_judge(self) -> bool:
        return self.verdict == CANNOT_JUDGE


def item_judgement(item: BatchItem, annotations: list[Annotation]) -> tuple[Judgement | None, str]:
    """The item's judgement from its live annotations (and its resolution, which wins), or None and
    why there is none: no verdict yet, or annotators who disagree (majority share below
    PROMOTION_MIN_AGREEMENT, or a tie) on an item no admin resolved. Failure modes count as the
    codes they were merged into."""
    resolution = getattr(item, "resolution", None)
    if resolution is not None:
        return Judgement(resolution.verdict, [resolve_code(c) for c in resolution.failure_modes],
                         resolution.reference_answer, annotations, resolved_by=resolution.resolved_by.username,
                         resolution_reason=resolution.reason), ""
    usable = [a for a in annotations if a.verdict]
    verdict, why = adjudicate(Counter(a.verdict for a in usable))
    if verdict is None:
        return None, why
    # The most recent agreeing judgement's reference answer and modes come first.
    agreeing = sorted((a for a in usable if a.verdict == verdict),
                      key=lambda a: (a.ls_updated_at is None, a.ls_updated_at), reverse=True)
    modes = list(dict.fromkeys(resolve_code(c) for a in agreeing for c in a.failure_modes))
    reference = next((a.reference_answer for a in agreeing if a.reference_answer.strip()), "")
    return Judgement(verdict, modes, reference, annotations), ""


def adjudicate(votes: Counter) -> tuple[str | None, str]:
    """THE human verdict from annotators' votes (no resolution): the majority, when its share is at
    least PROMOTION_MIN_AGREEMENT and it is no tie; else None and why. Every consumer of a human
    verdict (promotion, signal validity, rates, the gate's audit) reads it through here."""
    if not votes:
        return None, "no verdict yet"
    verdict, n = votes.most_common(1)[0]
    total = sum(votes.values())
    if total > 1:
        agreement = n / total
        if list(votes.values()).count(n) > 1 or agreement < settings.PROMOTION_MIN_AGREEMENT:
            return None, (f"annotators disagree on the verdict ({dict(votes)}; agreement {agreement:.2f} < "
                          f"{settings.PROMOTION_MIN_AGREEMENT}): an admin must resolve it")
    return verdict, ""


def adjudicated(*, items: Iterable[int] | None = None) -> dict[int, tuple[str, list[str]]]:
    """{item id: (its human verdict, its failure modes)} for every item that has a verdict — what
    item_judgement decides (a resolution wins; else adjudicate over the live annotations, and the
    modes of the annotations that agree with it, as merged codes' survivors), in two queries."""
    from .models import Resolution

    votes: dict[int, list[tuple[str, list]]] = {}
    ann = Annotation.objects.with_verdict()
    res = Resolution.objects.all()
    if items is not None:
        items = list(items)
        ann, res = ann.filter(item_id__in=items), res.filter(item_id__in=items)
    for item_id, verdict, modes in ann.values_list("item_id", "verdict", "failure_modes"):
        votes.setdefault(item_id, []).append((verdict, modes or []))
    out = {}
    for item_id, vs in votes.items():
        verdict, _ = adjudicate(Counter(v for v, _ in vs))
        if verdict is not None:
            out[item_id] = (verdict, [c for v, modes in vs if v == verdict for c in modes])
    for item_id, verdict, modes in res.values_list("item_id", "verdict", "failure_modes"):
        out[item_id] = (verdict, modes or [])
    survivors: dict[str, str] = {}
    for item_id, (verdict, modes) in out.items():
        for c in modes:
            if c not in survivors:
                survivors[c] = resolve_code(c)
        out[item_id] = (verdict, list(dict.fromkeys(survivors[c] for c in modes)))
    return out


def adjudicated_verdicts(*, items: Iterable[int] | None = None) -> dict[int, str]:
    """{item id: its human verdict} (adjudicated), for every item that has one."""
    return {k: v for k, (v, _) in adjudicated(items=items).items()}


def live_annotations_by_item(*, items: Iterable[int] | None = None) -> dict[int, list[Annotation]]:
    """{item id: its live annotations in id order}, for the given items or every item."""
    qs = Annotation.objects.live().order_by("id")
    if items is not None:
        qs = qs.filter(item_id__in=list(items))
    out: dict[int, list[Annotation]] = {}
    for a in qs:
        out.setdefault(a.item_id, []).append(a)
    return out


def judged_items() -> Iterator[tuple[BatchItem, Judgement | None, str]]:
    """Every item with a live annotation or a resolution, with its judgement (or why none), its
    turn, session, signals, task and resolution loaded."""
    annotations = live_annotations_by_item()
    items = (BatchItem.objects.filter(pk__in=annotations.keys()) | BatchItem.objects.filter(resolution__isnull=False))
    for item in items.distinct().select_related("turn__source", "turn__session", "turn__signals", "task__project",
                                                "resolution__resolved_by").order_by("id"):
        j, reason = item_judgement(item, annotations.get(item.pk, []))
        yield item, j, reason


def items_for_turns(*, turn_ids: Iterable[int]) -> dict[int, BatchItem]:
    """{turn id: its item} for turns that went to labelling, resolutions loaded."""
    return {i.turn_id: i for i in BatchItem.objects.filter(turn_id__in=list(turn_ids))
            .select_related("turn__source", "resolution__resolved_by")}


def labelled_failures(*, codes: set[str] | None, verdicts: Iterable[str]) -> list[Annotation]:
    """Live annotations of production items (not generated cases under review) with one of the
    verdicts and at least one of the failure-mode codes (None: any), newest first, turns loaded."""
    qs = (Annotation.objects.live().filter(verdict__in=list(verdicts)).exclude(item__stratum=GENERATED)
          .select_related("item__turn").order_by("-id"))
    if codes is None:
        return list(qs)
    if connection.vendor == "postgresql":
        match = Q()
        for c in codes:
            match |= Q(failure_modes__contains=[c])
        return list(qs.filter(match))
    # SQLite has no JSON containment lookup; the demo's label counts are small.
    return [a for a in qs if codes & set(a.failure_modes or [])]


# --- what the annotator saw ---------------------------------------------------------------------

def turns_before(items: list[BatchItem]) -> dict[int, list[Turn]]:
    """{item id: the turns before its turn in the session}, at most LABELLING_CONVERSATION_TURNS:
    the conversation shown with the item in Label Studio."""
    keep = settings.LABELLING_CONVERSATION_TURNS
    by_session: dict[int, list[Turn]] = {}
    for t in Turn.objects.filter(session_id__in={i.turn.session_id for i in items}).order_by(
            "session_id", "timestamp", "position", "id"):
        by_session.setdefault(t.session_id, []).append(t)
    out = {}
    for item in items:
        turns = by_session[item.turn.session_id]
        idx = next(k for k, t in enumerate(turns) if t.id == item.turn_id)
        out[item.pk] = turns[max(0, idx - keep):idx]
    return out


def conversations(items: list[BatchItem]) -> dict[int, list[dict]]:
    """{item id: [{"role": "user" | "assistant", "content"}]}: the earlier turns the annotator saw
    with the item, as the test item keeps them (unredacted, like its query and response)."""
    out = {}
    for item_id, turns in turns_before(items).items():
        messages = []
        for t in turns:
            messages += [{"role": "user", "content": t.query}, {"role": "assistant", "content": t.response}]
        out[item_id] = messages
    return out


# --- progress and labels, for the pages -----------------------------------------------------------

def failure_candidates_unsent() -> QuerySet[Turn]:
    """Failure candidates not yet sent for labelling (a turn goes to Label Studio once, ever)."""
    return Turn.objects.production().filter(signals__failure_candidate=True, labelling_item__isnull=True)


def labelling_progress() -> list[dict]:
    """Per turn-judging project: tasks, items labelled, annotations, annotators, verdict alpha."""
    live = live_q("annotations__")
    projects = (LabelStudioProject.objects.filter(kind=LabelStudioProject.Kind.TURNS).order_by("title")
                .annotate(task_count=Count("tasks", distinct=True),
                          labelled=Count("annotations__item", filter=live, distinct=True),
                          annotation_count=Count("annotations", filter=live, distinct=True),
                          annotator_count=Count("annotations__annotator", filter=live, distinct=True)))
    out = []
    for p in projects:
        done = min(p.labelled, p.task_count) if p.task_count else p.labelled
        out.append({"title": p.title, "ls_project_id": p.ls_project_id, "tasks": p.task_count,
                    "labelled": p.labelled, "annotations": p.annotation_count, "annotators": p.annotator_count,
                    "share": done / p.task_count if p.task_count else None,
                    "verdict_alpha": agreement_report(project_id=p.pk)["verdict_alpha"]})
    return out


def failure_mode_pareto() -> list[dict]:
    """Items per failure mode in their human verdict (adjudicated: what promotion would take), most
    frequent first; merged codes count as their survivor, an item once per mode."""
    counts = Counter(code for _, modes in adjudicated().values() for code in modes)
    names = {m["code"]: m["name"] for m in failure_mode_tree()}
    return [{"code": code, "name": names.get(code, ""), "items": n}
            for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def failure_mode_production_rates() -> dict[str, float] | None:
    """Estimated share of production turns with each failure mode: Horvitz–Thompson over every
    sampled item with a human verdict (weight 1 / inclusion probability; generated cases left out),
    each with the modes of that verdict. None while nothing is judged."""
    judged = adjudicated()
    weights = {i: (1.0 / p if p else 0.0) for i, p in
               BatchItem.objects.exclude(stratum=GENERATED).values_list("id", "inclusion_probability")
               .iterator(chunk_size=10000) if i in judged}
    total = sum(weights.values())
    rates: Counter = Counter()
    for item_id, w in weights.items():
        for m in judged[item_id][1]:
            rates[m] += w
    return {m: w / total for m, w in rates.items()} if total else None


def strata_production_counts() -> dict[str, int]:
    """{stratum: detected production turns in it} (vocabulary.stratum_of, counted in the database)."""
    conditions, earlier = {}, Q()
    for stratum, signal in STRATUM_SIGNALS:
        conditions[stratum] = Q(**{signal: True}) & ~earlier
        earlier |= Q(**{signal: True})
    counts = TurnSignals.objects.aggregate(total=Count("turn_id"), **{
        s: Count("turn_id", filter=q) for s, q in conditions.items()})
    total = counts.pop("total")
    counts[NONE] = total - sum(counts.values())
    return counts


# --- pairwise --------------------------------------------------------------------------------------

def pairwise_picks(*, keys) -> dict[str, list[dict]]:
    """{task key: [{"annotator", "pick", "updated_at"}]} of the live, valid picks on those tasks
    (deleted, cancelled and invalid annotations left out). Keys without a pick are absent."""
    out: dict[str, list[dict]] = {}
    rows = (PairwiseAnnotation.objects.filter(live_q(), task__key__in=list(keys), invalid_reason="")
            .exclude(pick="").order_by("id").values_list("task__key", "annotator", "pick", "ls_updated_at"))
    for key, annotator, pick, updated in rows:
        out.setdefault(key, []).append({"annotator": annotator, "pick": pick, "updated_at": updated})
    return out
