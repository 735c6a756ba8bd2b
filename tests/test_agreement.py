import pytest

from labelling.agreement import agreement_report
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject
from production.models import Session, Source, Turn


@pytest.fixture
def items(db):
    source = Source.objects.create(name="s")
    session = Session.objects.create(source=source, external_id="x")
    batch = LabellingBatch.objects.create()
    out = []
    for i in range(6):
        turn = Turn.objects.create(source=source, session=session, external_id=f"t{i}", query="q", response="r")
        out.append(BatchItem.objects.create(batch=batch, turn=turn, stratum="none", inclusion_probability=1.0,
                                            query_key=f"q{i}"))
    return out


def annotate(project, item, who, verdict, modes=(), n=[0]):
    n[0] += 1
    Annotation.objects.create(ls_annotation_id=n[0], project=project, item=item, ls_task_id=n[0], annotator=who,
                              verdict=verdict, failure_modes=list(modes))


def test_agreement_is_krippendorffs_alpha_on_verdicts_and_modes(items):
    project = LabelStudioProject.objects.create(title="p", ls_project_id=1)
    verdicts_a = ["correct", "incorrect", "incorrect", "correct", "partially_correct", "incorrect"]
    verdicts_b = ["correct", "incorrect", "correct", "correct", "partially_correct", "incorrect"]
    for item, va, vb in zip(items, verdicts_a, verdicts_b):
        annotate(project, item, "ann-a", va, ["INTENT"] if va == "incorrect" else [])
        annotate(project, item, "ann-b", vb, ["INTENT"] if vb == "incorrect" else [])
    # a deleted annotation does not count
    Annotation.objects.create(ls_annotation_id=999, project=project, item=items[0], ls_task_id=999,
                              annotator="ann-c", verdict="incorrect", deleted=True)

    report = agreement_report(project_id=project.pk)

    import krippendorff
    import numpy as np
    codes = ["correct", "partially_correct", "incorrect", "cannot_judge"]
    expected = krippendorff.alpha(reliability_data=np.array([[codes.index(v) for v in verdicts_a],
                                                             [codes.index(v) for v in verdicts_b]], dtype=float),
                                  level_of_measurement="nominal")
    assert report["items_with_multiple_annotations"] == 6
    assert report["annotators"] == ["ann-a", "ann-b"]
    assert report["verdict_alpha"] == pytest.approx(expected, abs=1e-4)
    assert 0 < report["verdict_alpha"] < 1
    assert report["failure_mode_alpha"]["INTENT"] < 1  # they disagree on item 3
    assert report["per_annotator"]["ann-a"]["items"] == 6


def test_perfect_agreement_is_one_and_single_annotations_give_no_number(items):
    project = LabelStudioProject.objects.create(title="p", ls_project_id=1)
    for item, v in zip(items[:4], ["correct", "incorrect", "correct", "incorrect"]):
        annotate(project, item, "a", v)
        annotate(project, item, "b", v)
    annotate(project, items[5], "a", "correct")
    report = agreement_report(project_id=project.pk)
    assert report["verdict_alpha"] == 1.0
    assert report["items_with_multiple_annotations"] == 4
    assert agreement_report(project_id=12345)["verdict_alpha"] is None


def test_agreement_api(items, api):
    project = LabelStudioProject.objects.create(title="p", ls_project_id=1)
    for item, v in zip(items[:3], ["correct", "incorrect", "correct"]):
        annotate(project, item, "a", v)
        annotate(project, item, "b", v)
    assert api.get(f"/api/labelling/agreement/?project={project.pk}").json()["verdict_alpha"] == 1.0
