"""Reads of the evaluation app, for commands, the API, the dashboard and the gate (#11).

- production_rates(release, start=, end=, reference_mix=): a release's production quality
- production_rates_many(releases): the same, post-release window each, one pass over the turns
- signal_validity(): which signals predict a wrong answer, on the labelled items
- failure_model_summary(): the failure model fitted on the labels (version, held-out metrics, lifts)
- correlation_data() / correlation_report(): offline vs production (report_json: the exact JSON)
- offline runs and scores, alarms; for the gate: testset_latest_frozen, offline_runs_on,
  scoring_of, offline_difference (candidate minus baseline, paired by item)
"""
from .correlation import (  # noqa: F401
    correlation_data,
    correlation_report,
    item_level,
    item_level_weekly,
    offline_version,
    rank_correlation,
    report_json,
    served_item_scores,
)
from .failure_model import failure_model_summary  # noqa: F401
from .offline import (  # noqa: F401
    alarm_list,
    latest_offline_run,
    offline_difference,
    offline_run_get,
    offline_run_list,
    offline_runs_on,
    offline_scores_of,
    scoring_of,
    testset_latest_frozen,
)
from .rates import (  # noqa: F401
    common_mix,
    production_rates,
    production_rates_many,
    production_units,
    rollup_state,
    signal_names,
)
from .validity import human_verdicts, signal_validity, signal_validity_rows  # noqa: F401
