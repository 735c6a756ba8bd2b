"""The rephrase detector: does the next query of a session ask for the same thing again?

A plain package (no Django): production's signal detection and generation's de-duplication
both use it. ``rephrase.detector`` scores pairs, ``rephrase.encoder`` serves the sentence
encoder on onnxruntime, ``rephrase.evaluate`` measures it on the real data in ``rephrase/data``.
"""
from .detector import DEFAULT_THRESHOLD, RephraseDetector, RephraseScore, load_encoder

__all__ = ["DEFAULT_THRESHOLD", "RephraseDetector", "RephraseScore", "load_encoder"]
