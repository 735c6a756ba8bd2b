"""The failure model fitted on labels (issue #23 item 1): on labelled turns whose failures depend on
the signals with known weights, the fit recovers their direction and beats the stated weights held
out; below the label threshold it refuses; production computes failure_probability with the
active parameters; a refit on the same labels changes nothing."""
import io
import json
import math

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from evaluation.models import FailureModel
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject
from production.models import FailureModelParameters, Session, TurnSignals
from production.services import failure_model as production_model
from tests.evaluation_helpers import turns
from tests.test_signals import SAOSIN, ingest_records, session_lines

pytestmark = pytest.mark.django_db

# The truth the fixture draws verdicts from (log-odds of "incorrect"): thumbs down and an override
# raise it, a copy lowers it, the rephrase score raises it; escalation says nothing here, although
# the stated weights give it 0.6 -- so the stated weights rank worse than a fit can.
TRUTH = {"intercept": -2.0, "thumbs_down": 2.5, "human_override": 3.0, "copied": -2.0, "rephrase_score": 2.5,
         "escalated": 0.0}


def labelled_fixture(n: int, seed: int = 1, stated_truth: bool = False) -> None:
    """n labelled production turns: half sampled at random (inclusion 0.1), half failure candidates
    taken in full (inclusion 1); signals drawn at random, verdicts from TRUTH (or, stated_truth,
    from the stated weights themselves)."""
    rng = np.random.default_rng(seed)
    project = LabelStudioProject.objects.get_or_create(title="p", ls_project_id=1)[0]
    batch = LabellingBatch.objects.create(month="2026-09")
    rows = turns(model="m", n=n)
    signals, items = [], []
    for i, t in enumerate(rows):
        flags = {"thumbs_down": rng.random() < 0.2, "human_override": rng.random() < 0.08,
                 "copied": rng.random() < 0.25, "escalated": rng.random() < 0.2}
        reaction = rng.random() < 0.5
        score = float(rng.beta(0.6, 0.6)) if reaction else None
        flags["rephrased"] = bool(reaction and score >= 0.8)
        flags["followed_up"] = bool(reaction and score < 0.8)
        flags["session_ended"] = not reaction and not flags["copied"]
        eta = TRUTH["intercept"] + sum(TRUTH[k] for k in ("thumbs_down", "human_override", "copied", "escalated")
                                       if flags[k]) + TRUTH["rephrase_score"] * (score or 0.0)
        p = 1 / (1 + math.exp(-eta))
        if stated_truth:
            counted = ("human_override", "thumbs_down", "escalated")
            p = production_model.stated_failure_probability(
                flags, None if score is None else production_model.at_prior(score, 0.1),
                {"human_override": 0.95, "thumbs_down": 0.7, "escalated": 0.6}, counted)
        incorrect = rng.random() < p
        evidence = {("rephrased" if flags["rephrased"] else "followed_up"): {"score": score, "probability": score}} \
            if reaction else {}
        signals.append((t, flags, evidence))
        items.append(BatchItem(batch=batch, turn=t, stratum="failure" if i % 2 else "none",
                               inclusion_probability=1.0 if i % 2 else 0.1, query_key=t.external_id))
        items[-1].verdict = "incorrect" if incorrect else "correct"
    for t, flags, evidence in signals:
        TurnSignals.objects.filter(turn=t).update(evidence=evidence, **flags)
    BatchItem.objects.bulk_create(items)
    base = Annotation.objects.count()
    Annotation.objects.bulk_create([Annotation(ls_annotation_id=base + k + 1, project=project, item=it,
                                               ls_task_id=base + k + 1, annotator="a0", verdict=it.verdict)
                                    for k, it in enumerate(items)])


def fit(*args) -> dict:
    out = io.StringIO()
    call_command("fit_failure_model", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_below_the_label_threshold_it_keeps_the_stated_weights_and_says_so():
    labelled_fixture(60)
    out = fit()
    assert out["status"] == "insufficient_data" and out["version"] is None
    assert out["message"].startswith("insufficient data: 60 labelled, need 200")
    assert out["using"].startswith("stated weights")
    assert not FailureModel.objects.exists() and not FailureModelParameters.objects.exists()
    text = io.StringIO()
    call_command("fit_failure_model", stdout=text)
    assert "insufficient data: 60 labelled, need 200" in text.getvalue()


@override_settings(FAILURE_MODEL_MIN_PER_CLASS=1000)
def test_too_few_of_one_class_is_insufficient_too():
    labelled_fixture(250)
    assert fit()["message"].startswith("insufficient data: 250 labelled, need 200 (with at least 1000")


def test_the_fit_recovers_the_known_directions_and_beats_the_stated_weights_held_out():
    labelled_fixture(1200)
    out = fit()
    assert out["status"] == "fitted" and out["version"] == 1 and out["active"] is True
    assert set(out) >= {"status", "message", "version", "fitted_at", "n_labelled", "n_incorrect", "n_correct",
                        "min_labels", "coefficients", "metrics", "rephrase_prior", "using", "active"}
    assert out["n_labelled"] == 1200 and out["using"] == "fitted model v1"
    coef = out["coefficients"]["features"]
    assert set(coef) == set(production_model.FEATURES)
    assert coef["thumbs_down"] > 1 and coef["human_override"] > 1 and coef["rephrase_score"] > 1
    assert coef["copied"] < -0.5 and abs(coef["escalated"]) < 0.6
    lifts = {r["input"]: r for r in out["metrics"]["lifts"]}
    assert lifts["thumbs_down"]["ci_low"] > 1 and lifts["copied"]["ci_high"] < 1
    assert lifts["escalated"]["ci_low"] < 1 < lifts["escalated"]["ci_high"]
    assert lifts["abandoned"]["n"] == 0 and lifts["abandoned"]["odds_ratio"] is None  # no labelled turn has it
    held = out["metrics"]["held_out"]
    fitted, stated = held["fitted"], held["stated"]
    assert fitted["auc"]["n"] == stated["auc"]["n"] == 1200
    assert fitted["auc"]["auc"] > stated["auc"]["auc"] + 0.03
    assert fitted["auc"]["ci_low"] < fitted["auc"]["auc"] < fitted["auc"]["ci_high"]
    assert fitted["brier"]["brier"] < stated["brier"]["brier"] and held["brier_difference"]["ci_high"] < 0
    # the reliability table: every turn in one bin, and the held-out predictions are calibrated
    rel = out["metrics"]["reliability"]
    assert sum(r["n"] for r in rel) == 1200
    big = [r for r in rel if r["n"] >= 50]
    assert big and all(r["ci_low"] - 0.05 <= r["predicted"] <= r["ci_high"] + 0.05 for r in big)
    # the re-ask prior, estimated from the labels, replaces the setting
    prior = out["rephrase_prior"]
    assert prior["source"] == "fitted" and 0 < prior["ci_low"] < prior["value"] < prior["ci_high"] < 1
    params = FailureModelParameters.objects.get(active=True)
    assert params.version == 1 and params.coefficients == out["coefficients"]
    assert params.rephrase_prior == pytest.approx(prior["value"])


def test_a_refit_on_the_same_labels_changes_nothing_and_new_labels_make_a_new_version():
    labelled_fixture(300)
    first = fit()
    again = fit()
    assert again["status"] == "unchanged" and again["version"] == first["version"] == 1
    Session.objects.update(dirty=False)
    assert fit()["status"] == "unchanged" and not Session.objects.filter(dirty=True).exists()  # nothing to redo
    assert FailureModel.objects.count() == 1 and FailureModelParameters.objects.count() == 1
    labelled_fixture(100, seed=2)
    third = fit()
    assert third["status"] == "fitted" and third["version"] == 2 and third["n_labelled"] == 400
    assert list(FailureModel.objects.filter(active=True).values_list("version", flat=True)) == [2]
    assert list(FailureModelParameters.objects.filter(active=True).values_list("version", flat=True)) == [2]


@override_settings(SIGNALS_SEMANTIC=False)
def test_detection_uses_the_active_parameters_after_a_fit(tmp_path):
    # given: a real session detected with the stated weights
    ingest_records(tmp_path, session_lines(SAOSIN))
    out = io.StringIO()
    call_command("detect_signals", "--json", stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1])["failure_model_version"] is None
    before = dict(TurnSignals.objects.filter(turn__session__external_id=SAOSIN)
                  .values_list("turn__external_id", "failure_probability"))
    # when: the model is fitted on labels and the session is detected again
    labelled_fixture(400)
    model = fit()
    # a new active version marks every session for re-detection (the beat's next run redoes them)
    assert not Session.objects.filter(dirty=False).exists()
    out = io.StringIO()
    call_command("detect_signals", "--json", stdout=out)
    # then: each probability is the fitted logistic of the turn's inputs, and the run names the version
    assert json.loads(out.getvalue().strip().splitlines()[-1])["failure_model_version"] == model["version"]
    intercept, coefs = production_model.validate(model["coefficients"])
    changed = 0
    for sig in TurnSignals.objects.filter(turn__session__external_id=SAOSIN).select_related("turn"):
        x = production_model.features(sig.flags(), production_model.rephrase_score_of(sig.evidence))
        eta = intercept + sum(c * v for c, v in zip(coefs, x))
        assert sig.failure_probability == pytest.approx(1 / (1 + math.exp(-eta)), abs=2e-4)  # evidence rounds to 1e-4
        changed += abs(sig.failure_probability - before[sig.turn.external_id]) > 1e-3
        for name in ("rephrased", "followed_up"):
            if name in sig.evidence:
                assert sig.evidence[name]["prior"] == pytest.approx(model["rephrase_prior"]["value"])
    assert changed >= 3


def test_the_correlation_page_shows_the_model_fitted_vs_stated_with_intervals():
    from django.test import Client

    from conftest import user_with_role

    client = Client()
    client.force_login(user_with_role("viewer-fm", "viewer", password="pw-fm-1"))
    assert "No model fitted yet" in client.get("/correlation/").content.decode()
    labelled_fixture(300)
    out = fit()
    html = client.get("/correlation/").content.decode()
    section = html[html.index('id="failure-model"'):html.index('aria-labelledby="alarms-h"')]
    held = out["metrics"]["held_out"]
    assert f"Version {out['version']} (active)" in section and "on 300 labelled turns" in section
    for name in ("fitted", "stated"):
        auc = held[name]["auc"]
        assert f'data-model="{name}"' in section
        assert f"[{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]" in section
    assert section.count("<tr data-input=") == len(production_model.FEATURES)
    assert f"<td class=\"num\">{out['metrics']['reliability'][0]['n']}</td>" in section
    assert "Detection now uses: fitted model v1" in section


def test_a_fit_that_does_not_beat_the_stated_weights_held_out_is_kept_inactive_and_says_so():
    labelled_fixture(600, stated_truth=True)  # the stated weights are the truth: a fit can only lose
    out = fit()
    assert out["status"] == "fitted" and out["version"] == 1 and out["active"] is False
    assert out["metrics"]["beats_stated"] is False and out["metrics"]["held_out"]["brier_difference"]["ci_high"] >= 0
    assert "does not beat the stated weights held out" in out["message"]
    assert out["using"].startswith("stated weights") and not FailureModelParameters.objects.filter(active=True).exists()
    assert fit()["status"] == "unchanged" and not FailureModel.objects.filter(active=True).exists()


def test_production_refuses_parameters_it_cannot_apply_and_keeps_the_active_ones():
    good = {"intercept": -1.0, "features": dict.fromkeys(production_model.FEATURES, 0.5)}
    production_model.failure_model_set(version=1, coefficients=good, rephrase_prior=0.2)
    with pytest.raises(ValueError, match="'human_override' must be a finite number"):
        production_model.failure_model_set(version=2, coefficients={"intercept": 0.0, "features": {
            **good["features"], "human_override": float("nan")}})
    with pytest.raises(ValueError, match="rephrase_prior"):
        production_model.failure_model_set(version=2, coefficients=good, rephrase_prior=1.5)
    assert production_model.failure_model_active().version == 1
    assert production_model.failure_model_clear() == 1 and production_model.failure_model_active() is None
