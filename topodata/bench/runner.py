"""Run a pipeline cell by cell — embed (cached) → select → train → evaluate — and resume after a stop.

Every cell runs under one protocol: the same embedding for every method, the same trainer and
step budget for every subset, the cell's seed for both the selection and the training. The
selection is :func:`topodata.pipeline.select_dataset`, the call ``topodata select`` makes, so a
cell's indices equal that command's for the same settings. A finished
cell is appended to ``results.csv`` at once and its selection saved under ``cells/<cell-id>/``;
a restart reads the CSV and skips those cells without recomputing anything. The pipeline file,
the protocol and the library versions are saved beside the numbers (the airbench habit), and a
results folder refuses a pipeline whose protocol differs from the one that produced its rows.
"""

from __future__ import annotations

import inspect
import json
import platform
import sys
import time
import tomllib
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import _validation as V
from .._io import atomic_write_files, json_bytes
from .._meta import versions
from .._threads import cpu_kernels
from ..data import load_dataset
from ..extrapolate import EXTRAPOLABLE
from ..pipeline import load_embedding, select_dataset
from ..select import SelectionResult, save_selection
from .pipeline import FULL, PROBE, Cell, Pipeline, enumerate_cells, load_pipeline
from .report import report_files
from .results import append_result, read_results

__all__ = ["run_pipeline", "BenchSummary", "jaccard", "DEFAULT_OUT"]

DEFAULT_OUT = Path("runs") / "bench"  # results go to DEFAULT_OUT / <pipeline name> unless told


@dataclass
class BenchSummary:
    """What a call of :func:`run_pipeline` did.

    ``cells`` lists every cell of the pipeline (after ``only_methods``), ``done_before`` the ids
    already in ``results.csv`` when the call started, ``ran`` and ``failed`` the ids this call
    finished or gave up on (failures are logged to ``errors.log`` and retried by the next run).
    """

    out_dir: Path
    cells: list[Cell]
    done_before: list[str]
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def n_left(self) -> int:
        done = set(self.done_before) | set(self.ran)
        return sum(c.cell_id not in done for c in self.cells)


def jaccard(a: Any, b: Any) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two index sets (1.0 for two empty sets)."""
    a, b = np.unique(np.asarray(a)), np.unique(np.asarray(b))
    union = np.union1d(a, b).size
    return 1.0 if union == 0 else np.intersect1d(a, b, assume_unique=True).size / union


class _Context:
    """Lazily loaded shared state of one run: the dataset, embeddings and recent selections."""

    def __init__(self, pipeline: Pipeline, out: Path, rows: list[dict], progress: bool):
        self.p, self.out, self.progress = pipeline, out, progress
        self._dataset = None
        self._embeddings: dict[str, Any] = {}
        # selections are reused by consecutive cells only (transfer trainers, the noise reference);
        # a few recent ones in memory, the rest from disk
        self._selections: OrderedDict[tuple, Any] = OrderedDict()
        self._on_disk: dict[tuple, str] = {}
        for r in rows:
            if r["method"] != FULL:
                key = (r["method"], r["rate"], r["seed"], r["embedder"], r["noise"] or 0.0)
                self._on_disk.setdefault(key, r["cell_id"])

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = load_dataset(self.p.dataset, progress=self.progress)
        return self._dataset

    def embedding(self, model: str):
        if model not in self._embeddings:
            e = self.p.embedder
            res = load_embedding(self.p.dataset, model=model, proxy_fraction=e.proxy_fraction, embed_seed=e.seed,
                                 progress=self.progress, embed_params=e.params)
            if self._dataset is not None and len(res.features) != self.dataset.n_train:
                raise RuntimeError(
                    f"embedder {model!r} returned {len(res.features)} feature rows for a training split "
                    f"of {self.dataset.n_train}"
                )
            self._embeddings[model] = res
        return self._embeddings[model]

    def selection(self, cell: Cell) -> tuple[Any, float]:
        """``(SelectionResult, seconds spent selecting now)``; 0 s when reused."""
        key = cell.selection_key
        if key in self._selections:
            self._selections.move_to_end(key)
            return self._selections[key], 0.0
        src = self._on_disk.get(key)
        d = self.out / "cells" / src if src else None
        if d is not None and (d / "indices.npy").is_file():
            res = SelectionResult(
                indices=np.load(d / "indices.npy"),
                scores=np.load(d / "scores.npy"),
                manifest=json.loads((d / "manifest.json").read_text()),
            )
            seconds = 0.0
        else:
            sel, e = self.p.selection, self.p.embedder
            emb = self.embedding(cell.embedder)  # loaded once per run, outside the selection's time
            t0 = time.perf_counter()
            res = select_dataset(
                self.p.dataset, rate=cell.rate, method=cell.method, random_state=cell.seed,
                embedding=emb, model=cell.embedder, proxy_fraction=e.proxy_fraction,
                embed_seed=e.seed, feature_noise=cell.noise, progress=self.progress,
                strategy=sel.strategy, class_balance=sel.class_balance, sampler=sel.sampler,
                method_params=sel.method_params.get(cell.method),
                **({"score_fraction": sel.score_fraction, "extrapolate": sel.extrapolate}
                   if sel.score_fraction is not None and cell.method in EXTRAPOLABLE else {}),
            )
            seconds = time.perf_counter() - t0
            res.extras = {}  # plot arrays; not needed here and large
            res.manifest["embedder"] = {**self.p.protocol()["embedder"], "model": cell.embedder,
                                        "noise_scale": cell.noise}
        self._selections[key] = res
        while len(self._selections) > 8:
            self._selections.popitem(last=False)
        return res, seconds

    def train(self, cell: Cell, indices: np.ndarray | None) -> dict[str, Any]:
        t = self.p.trainer
        if cell.trainer == PROBE:
            from ..train.subset import probe_on_subset  # scikit-learn: only for probe cells

            emb = self.embedding(cell.embedder)  # clean features: noise only perturbs the selection
            return probe_on_subset(emb.features, emb.labels, emb.features_test, emb.labels_test, indices,
                                   random_state=cell.seed, **t.probe)
        from ..train.subset import train_on_subset  # torch: only when a network is trained

        return train_on_subset(
            self.dataset, indices, model=cell.trainer, steps=t.steps, batch_size=t.batch_size, lr=t.lr,
            random_state=cell.seed, device=t.device, progress=False, fit_params=t.params,
        )


def _experiment(cell: Cell, p: Pipeline) -> str:
    if cell.method == FULL:
        return "full"
    if cell.noise:
        return "noise"
    if cell.embedder != p.embedder.model or cell.trainer != p.trainer.model:
        return "transfer"
    return "main"


def _run_cell(cell: Cell, ctx: _Context) -> dict[str, Any]:
    p = ctx.p
    sel, t_sel, jac = None, 0.0, None
    if cell.method != FULL:
        sel, t_sel = ctx.selection(cell)
        if cell.noise:
            jac = jaccard(sel.indices, ctx.selection(cell.clean())[0].indices)
    metrics = ctx.train(cell, None if sel is None else sel.indices)
    row = {
        "cell_id": cell.cell_id,
        "experiment": _experiment(cell, p),
        "method": cell.method,
        "rate": cell.rate,
        "seed": cell.seed,
        "embedder": cell.embedder,
        "trainer": cell.trainer,
        "noise": cell.noise,
        "n_train": metrics["n_train"],
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "jaccard": jac,
        "steps": metrics["steps"],
        "seconds_select": t_sel,
        "seconds_train": metrics["seconds"],
        "protocol": p.protocol_hash(),
    }
    info = json_bytes({"row": row, "metrics": metrics}, default=str)
    cell_dir = ctx.out / "cells" / cell.cell_id
    if sel is None:
        atomic_write_files(cell_dir, {"metrics.json": info})
    else:
        save_selection(sel, cell_dir, extra_files={"metrics.json": info})
    return row


def _check_names(p: Pipeline) -> None:
    """Fail before any compute on a model name or an option the library does not know."""
    from ..embed import embed, embed_cached  # torch: only once a pipeline is run, not for --help
    from ..nn import MODELS, fit
    from ..train.subset import probe_on_subset, train_on_subset

    def accepted(*funcs, drop=()):
        names = set()
        for f in funcs:
            names |= {k for k, v in inspect.signature(f).parameters.items() if v.kind == v.KEYWORD_ONLY}
        return names - set(drop)

    checks = (
        ("embedder.params", p.embedder.params,
         accepted(embed_cached, embed, drop=("model", "proxy_fraction", "random_state", "progress"))),
        ("trainer.params", p.trainer.params,
         accepted(fit, drop=set(inspect.signature(train_on_subset).parameters) | {"epochs"})),
        ("trainer.probe", p.trainer.probe, accepted(probe_on_subset, drop=("random_state",))),
    )
    for key, given, allowed in checks:
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise V.TopodataInputError(
                f"pipeline {p.name!r}: {key} has unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
            )

    embedders = {p.embedder.model, *(p.transfer.embedders if p.transfer else ())}
    trainers = {p.trainer.model, *(p.transfer.trainers if p.transfer else ())}
    for kind, names, extra in (("embedder", embedders, ()), ("trainer", trainers, (PROBE,))):
        for n in sorted(names):
            if n not in MODELS and n not in extra:
                raise V.TopodataInputError(
                    f"pipeline {p.name!r}: unknown {kind} model {n!r}; choose from {sorted([*MODELS, *extra])}"
                )


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _check_protocol(out: Path, p: Pipeline, rows: list[dict]) -> None:
    """Refuse to mix numbers of two protocols in one results folder (see ``Pipeline.protocol``)."""
    path = out / "protocol.json"
    if path.is_file():
        old = _flat(json.loads(path.read_text()))
        new = _flat(json.loads(json.dumps(p.protocol(), default=str)))
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if diff:
            raise V.TopodataInputError(
                f"{out} holds results of another protocol (differs in {', '.join(diff)}); "
                "use another --out folder or delete it"
            )
    elif {r["protocol"] for r in rows} - {p.protocol_hash()}:
        raise V.TopodataInputError(f"{out}/results.csv was written under another protocol; use another --out")


def run_pipeline(
    pipeline: str | Path | Pipeline,
    out_dir: str | Path | None = None,
    *,
    only_methods: tuple[str, ...] | list[str] | None = None,
    max_cells: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> BenchSummary:
    """Run every unfinished cell of ``pipeline`` and write the report.

    Parameters
    ----------
    pipeline : path or Pipeline
        A TOML file (see :mod:`topodata.bench.pipeline` for the schema) or a parsed pipeline.
    out_dir : path, optional
        Results folder; default ``runs/bench/<pipeline name>``. Holds ``results.csv``,
        ``results.md``, the plots, ``cells/<cell-id>/`` (selection + ``metrics.json``),
        ``pipeline.toml``, ``protocol.json`` and ``versions.json``. Another pipeline of the same
        protocol may share the folder and its cells; its report files are named
        ``<its name>.results.md``, ``<its name>.pipeline.toml`` and so on.
    only_methods : list of str, optional
        Run only these methods' cells (the full-data cells always run: the gap metric needs them).
        The report still shows every finished cell.
    max_cells : int, optional
        Stop after this many cells (run again to continue).
    dry_run : bool, default=False
        Only plan: return the cells and which are done; write nothing.
    progress : bool, default=True
        A progress bar over cells.

    Returns
    -------
    BenchSummary

    Raises
    ------
    TopodataInputError
        On a bad pipeline file, an unknown model, or a results folder of another protocol.
    """
    p = pipeline if isinstance(pipeline, Pipeline) else load_pipeline(pipeline)
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT / p.name
    if max_cells is not None:
        V.check_scalar(max_cells, "max_cells", int, min_val=0)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} exists and is not a folder")
    cells = enumerate_cells(p, only_methods=tuple(only_methods) if only_methods else None)
    _check_names(p)
    rows = read_results(out / "results.csv")
    _check_protocol(out, p, rows)
    done = {r["cell_id"] for r in rows}
    summary = BenchSummary(out, cells, [c.cell_id for c in cells if c.cell_id in done])
    if dry_run:
        return summary
    todo = [c for c in cells if c.cell_id not in done]
    if max_cells is not None:
        todo = todo[:max_cells]

    prefix = _report_prefix(out, p)
    atomic_write_files(out, {
        f"{prefix}pipeline.toml": p.source.encode(),
        "protocol.json": json_bytes(p.protocol(), default=str),
        "versions.json": json_bytes({**versions(), "python": platform.python_version(), "cpu": cpu_kernels()}),
    })
    try:
        _run_cells(todo, _Context(p, out, rows, progress), summary)
    finally:  # the report of every finished cell, also after a stop
        summary.files = _write_report(out, p, prefix)
    return summary


def _run_cells(todo: list[Cell], ctx: _Context, summary: BenchSummary) -> None:
    """Run ``todo`` in order, appending each finished cell to ``results.csv`` at once.

    A cell that raises is logged to ``errors.log`` (with its traceback) and left unfinished, so the
    next run retries it; bad input (``TopodataInputError``) would fail every cell alike and stops the run.
    """
    if not todo:
        return
    bar = tqdm(total=len(summary.cells), initial=len(summary.done_before), desc=ctx.p.name, unit="cell",
               disable=not ctx.progress, dynamic_ncols=True)
    try:
        for cell in todo:
            bar.set_postfix_str(cell.cell_id)
            try:
                row = _run_cell(cell, ctx)
            except (KeyboardInterrupt, V.TopodataInputError):
                raise  # bad input fails every cell alike: stop at once with its message
            except Exception as exc:  # a method's bug must not cost the other cells
                summary.failed.append(cell.cell_id)
                _log_failure(ctx.out, cell, exc)
            else:
                append_result(ctx.out / "results.csv", row)
                summary.ran.append(cell.cell_id)
            bar.update(1)
    finally:
        bar.close()


def _log_failure(out: Path, cell: Cell, exc: Exception) -> None:
    with open(out / "errors.log", "a", encoding="utf-8") as fh:
        fh.write(f"=== {cell.cell_id} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        fh.write("".join(traceback.format_exception(exc)))
    print(f"topodata bench: cell {cell.cell_id} failed: {type(exc).__name__}: {exc} "
          f"(traceback in {out / 'errors.log'})", file=sys.stderr)


def _report_prefix(out: Path, p: Pipeline) -> str:
    """``''`` for the pipeline that owns ``out`` (the first to write its ``pipeline.toml``), else ``'<name>.'``.

    Pipelines of one protocol may share a folder (and so their finished cells); each keeps its own
    ``pipeline.toml``, ``results.md`` and plots instead of overwriting the owner's.
    """
    path = out / "pipeline.toml"
    if not path.is_file():
        return ""
    try:
        owner = tomllib.loads(path.read_text()).get("name")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        owner = None
    return "" if owner in (None, p.name) else f"{p.name}."


def _write_report(out: Path, p: Pipeline, prefix: str = "") -> list[Path]:
    files = report_files(read_results(out / "results.csv"), p)
    return atomic_write_files(out, {f"{prefix}{name}": data for name, data in files.items()})
