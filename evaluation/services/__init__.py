"""Writes of the evaluation app: offline runs and imports (offline.py), alarms (alarms.py)."""
