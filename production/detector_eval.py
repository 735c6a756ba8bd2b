"""Detector evaluation as production reports it (``manage.py evaluate_detectors``).

The balanced pair sets live with the detector (``rephrase.evaluate``); no Django imports here.
"""
from rephrase.evaluate import build_sets, canard_pairs, evaluate, format_report, hint3_pairs  # noqa: F401
