"""Does a transfer effect stand out from noise? The pre-registered analysis of a sweep's `results.csv`.

- `rows`: one typed row of a results file (`StudentResult`), which the sweep writes and the analysis reads;
- `results`: reading a results file, refusing what cannot be analysed, pairing trait with control rows;
- `claims`: the primary test and the secondary claims gated on it;
- `analysis`: `analyze`, choosing the primary configuration and building the per-configuration table;
- `sensitivity`: the dose-response curve of planted doses;
- `report`: markdown.

Every statistic comes from scipy or statsmodels, imported inside the functions that need them (importing
this package loads neither them nor torch).
"""

from sublim.experiment.analysis import Analysis, ConfigDelta, analyze, parse_primary
from sublim.experiment.claims import Claim
from sublim.experiment.report import render, render_sensitivity
from sublim.experiment.results import read_results
from sublim.experiment.rows import StudentResult
from sublim.experiment.sensitivity import DoseResult, Sensitivity, sensitivity

__all__ = [
    "Analysis",
    "Claim",
    "ConfigDelta",
    "DoseResult",
    "Sensitivity",
    "StudentResult",
    "analyze",
    "parse_primary",
    "read_results",
    "render",
    "render_sensitivity",
    "sensitivity",
]
