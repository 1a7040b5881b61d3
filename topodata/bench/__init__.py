"""Benchmark runner: methods × rates × seeds (plus noise and transfer) under one training protocol.

- :mod:`~topodata.bench.pipeline`: the declarative TOML schema and the grid of cells;
- :mod:`~topodata.bench.runner`: each cell's selection through :func:`topodata.pipeline.select_dataset`
  (the call ``topodata select`` makes), then train → evaluate, resumable;
- :mod:`~topodata.bench.results`: the append-only ``results.csv``;
- :mod:`~topodata.bench.report`: ``results.md`` (mean ± std, gap recovered, noise, transfer) and plots.

>>> from topodata.bench import gap_recovered
>>> gap_recovered(0.85, 0.80, 0.90)
0.5
"""

from ..pipeline import add_feature_noise  # re-exported: the noise lives with the selection pipeline
from .pipeline import Cell, Pipeline, enumerate_cells, load_pipeline, parse_pipeline
from .report import gap_recovered, markdown_report, report_files
from .results import read_results
from .runner import BenchSummary, jaccard, run_pipeline

__all__ = [
    "Pipeline",
    "Cell",
    "load_pipeline",
    "parse_pipeline",
    "enumerate_cells",
    "run_pipeline",
    "BenchSummary",
    "gap_recovered",
    "markdown_report",
    "report_files",
    "read_results",
    "add_feature_noise",
    "jaccard",
]
