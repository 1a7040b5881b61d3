"""Declarative benchmark pipelines: the TOML schema, its validation, and the grid of cells.

A pipeline file says *what* to compare; :mod:`topodata.bench.runner` runs it. Schema (every key
optional unless marked required; an unknown key is an error, so a typo never silently falls back to
a default)::

    name = "fashion_mnist"            # default: the file's stem
    description = "free text"
    dataset = "fashion-mnist"         # required; any spec of topodata.data.load_dataset
    methods = ["random", "topoprune"] # required; names of topodata.scores.available_methods()
    rates = [0.5, 0.9]                # required; fractions *removed*, each in (0, 1)
    seeds = [0, 1, 2]                 # required; seed of the selection and of the training
    full_data = true                  # also train on the whole training split (per seed)

    [embedder]                        # the proxy model whose penultimate features are scored
    model = "smallcnn"
    proxy_fraction = 1.0              # fraction of the training split the proxy trains on
    seed = 0                          # one embedding per embedder, shared by every cell
    params = {}                       # more keywords for topodata.embed.embed_cached

    [trainer]                         # how every subset is judged, identically for all methods
    model = "smallcnn"                # or "probe": logistic regression on the embedder's features
    steps = 1500                      # required unless model = "probe"; fixed, not per epoch
    batch_size = 128
    lr = 0.05                         # peak of the one-cycle schedule
    device = "auto"
    params = {}                       # more keywords for topodata.train.fit (weight_decay, ...)
    probe = {}                        # options of the probe (C, max_iter), see probe_on_subset

    [selection]
    strategy = "coverage"             # default: each method's own
    sampler = "key"                   # how a coverage stratum is sampled: key (default) or draw
    class_balance = "boundary"        # default: each method's own (boundary for topoprune)
    method_params = { topoprune = { k_local = 16 } }  # checked against the method's config

    [noise]                           # robustness: Gaussian noise on the embedder's features
    scales = [0.1, 0.25, 0.5]         # sigma = scale * mean per-dimension std of the features
    methods = [...]                   # default: all methods

    [transfer]                        # embedder A x trained model B, at every rate
    embedders = ["mlp", "smallcnn", "resnet18"]
    trainers = ["mlp", "smallcnn", "resnet18"]
    methods = [...]                   # default: all methods

A *cell* is one training run: a method (or the full training split), a rate, a seed, an embedder,
a trained model and a noise scale. The plain grid ``methods x rates x seeds`` (with the
``[embedder]`` and ``[trainer]`` models, no noise) is the clean reference that the noise and the
transfer experiments share, so no cell is ever trained twice.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import _validation as V
from ..extrapolate import EXTRAPOLABLE, check_extrapolation
from ..pipeline import check_method_params
from ..scores import available_methods, get_method
from ..select import BALANCES, SAMPLERS, STRATEGIES

__all__ = [
    "Pipeline",
    "EmbedderSpec",
    "TrainerSpec",
    "NoiseSpec",
    "TransferSpec",
    "Cell",
    "load_pipeline",
    "parse_pipeline",
    "enumerate_cells",
    "PROBE",
    "FULL",
]

PROBE = "probe"  # trainer name: logistic regression on the embedder's features, no network
FULL = "full"  # method name of the cells that train on the whole training split


@dataclass(frozen=True)
class EmbedderSpec:
    model: str = "smallcnn"
    proxy_fraction: float = 1.0
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainerSpec:
    model: str = "smallcnn"
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.05
    device: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionSpec:
    strategy: str | None = None
    class_balance: str | None = None  # None: each method's own
    sampler: str = "key"
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_fraction: float | None = None  # score extrapolation for the methods that allow it
    extrapolate: str | None = None


@dataclass(frozen=True)
class NoiseSpec:
    scales: tuple[float, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class TransferSpec:
    embedders: tuple[str, ...]
    trainers: tuple[str, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file. ``source`` is the TOML text, saved beside the results."""

    name: str
    dataset: str
    methods: tuple[str, ...]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    embedder: EmbedderSpec
    trainer: TrainerSpec
    selection: SelectionSpec = field(default_factory=SelectionSpec)
    full_data: bool = True
    description: str = ""
    noise: NoiseSpec | None = None
    transfer: TransferSpec | None = None
    source: str = ""

    def protocol(self) -> dict[str, Any]:
        """Everything that changes a cell's number *without* changing its id.

        A results folder is tied to one protocol: extending ``methods``, ``rates``, ``seeds``,
        noise ``scales`` or the transfer lists adds cells, but changing, say, ``trainer.steps``
        would mix numbers from two protocols in one table, so the runner refuses it.
        """
        return {
            "dataset": self.dataset,
            "embedder": {k: v for k, v in asdict(self.embedder).items() if k != "model"},
            "trainer": {k: v for k, v in asdict(self.trainer).items() if k != "model"},
            # the extrapolation keys only when set, so that older results folders keep their protocol
            "selection": {k: v for k, v in asdict(self.selection).items()
                          if v is not None or k not in ("score_fraction", "extrapolate")},
        }

    def protocol_hash(self) -> str:
        blob = json.dumps(self.protocol(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class Cell:
    """One training run of the benchmark.

    ``method == FULL`` marks a full-data cell (``rate`` 0, no selection). ``embedder`` is the
    model whose features the selection (and a probe trainer) used; ``"none"`` for a full-data
    cell of a network trainer. ``noise`` is the scale of the feature noise (0 = clean).
    """

    method: str
    rate: float
    seed: int
    embedder: str
    trainer: str
    noise: float = 0.0

    @property
    def cell_id(self) -> str:
        """A readable, file-system-safe, unique name, e.g. ``topoprune_r0.9_s0_smallcnn-mlp_n0.25``."""
        if self.method == FULL:
            return f"full_s{self.seed}_{self.embedder}-{self.trainer}"
        tail = f"_n{self.noise:g}" if self.noise else ""
        return f"{self.method}_r{self.rate:g}_s{self.seed}_{self.embedder}-{self.trainer}{tail}"

    @property
    def selection_key(self) -> tuple:
        """Cells with equal keys share one selection (the trained model does not change it)."""
        return (self.method, self.rate, self.seed, self.embedder, self.noise)

    def clean(self) -> "Cell":
        """The same cell without feature noise: the reference of the Jaccard overlap."""
        return Cell(self.method, self.rate, self.seed, self.embedder, self.trainer, 0.0)


# ---------------------------------------------------------------------------------------------
# parsing


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline TOML file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TopodataInputError
        On a TOML syntax error, an unknown key, a missing required key or a bad value; the message
        names the file and the key.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pipeline file {str(p)!r} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise V.TopodataInputError(f"pipeline file {str(p)!r} is not UTF-8 TOML text ({exc.reason})") from None
    return parse_pipeline(text, name=p.stem, origin=str(p))


def parse_pipeline(text: str, *, name: str = "pipeline", origin: str = "<string>") -> Pipeline:
    """Validate pipeline TOML ``text`` (see the module docstring for the schema).

    Every check runs here, before any cell: the keys and types of each table, the method names,
    and each method's ``method_params`` against its config dataclass (a typo is one clear line,
    not a failure per cell at run time). Options that a pipeline's methods or trainers would
    ignore give a ``UserWarning``.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise V.TopodataInputError(f"{origin}: not valid TOML: {exc}") from None
    r = _Reader(raw, origin)
    top = r.keys(
        "", ("name", "description", "dataset", "methods", "rates", "seeds", "full_data", "embedder",
             "trainer", "selection", "noise", "transfer"),
    )
    methods, rates, seeds = _parse_grid(r, top)
    noise = _parse_noise(r, top, methods)
    transfer = _parse_transfer(r, top, methods)
    trainer = _parse_trainer(r, top.get("trainer", {}))
    _warn_ignored(origin, trainer, transfer)
    embedder = _parse_embedder(r, top.get("embedder", {}))
    selection = _parse_selection(r, top.get("selection", {}), methods)
    if selection.score_fraction is not None and embedder.proxy_fraction not in (1.0, selection.score_fraction):
        raise V.TopodataInputError(
            f"{origin}: embedder.proxy_fraction {embedder.proxy_fraction} with selection.score_fraction "
            f"{selection.score_fraction}: the scored set is the proxy's training set; use the same value or 1.0"
        )
    return Pipeline(
        name=r.scalar("name", top.get("name", name), str),
        description=r.scalar("description", top.get("description", ""), str),
        dataset=r.scalar("dataset", top.get("dataset"), str, required=True),
        methods=methods,
        rates=rates,
        seeds=seeds,
        full_data=r.scalar("full_data", top.get("full_data", True), bool),
        embedder=embedder,
        trainer=trainer,
        selection=selection,
        noise=noise,
        transfer=transfer,
        source=text,
    )


def _parse_grid(r: "_Reader", top: dict) -> tuple[tuple[str, ...], tuple[float, ...], tuple[int, ...]]:
    methods = r.str_list("methods", top.get("methods"), required=True, options=available_methods())
    rates = tuple(
        V.check_rate(v, name=f"{r.origin}: rates") for v in r.list_of("rates", top.get("rates"), (int, float))
    )
    seeds = r.list_of("seeds", top.get("seeds"), int)
    for s in seeds:
        if s < 0:
            raise V.TopodataInputError(f"{r.origin}: seeds must be non-negative integers; got {s}")
    return methods, rates, seeds


def _parse_embedder(r: "_Reader", table: Any) -> EmbedderSpec:
    emb = r.keys("embedder", ("model", "proxy_fraction", "seed", "params"), table)
    return EmbedderSpec(
        model=r.scalar("embedder.model", emb.get("model", "smallcnn"), str),
        proxy_fraction=float(
            r.scalar("embedder.proxy_fraction", emb.get("proxy_fraction", 1.0), (int, float), lo=0.0, hi=1.0,
                     include_lo=False)
        ),
        seed=r.scalar("embedder.seed", emb.get("seed", 0), int, lo=0),
        params=r.table("embedder.params", emb.get("params", {})),
    )


def _parse_trainer(r: "_Reader", table: Any) -> TrainerSpec:
    tr = r.keys("trainer", ("model", "steps", "batch_size", "lr", "device", "params", "probe"), table)
    model = r.scalar("trainer.model", tr.get("model", "smallcnn"), str)
    steps = tr.get("steps")
    if steps is None and model != PROBE:
        raise V.TopodataInputError(
            f"{r.origin}: [trainer] needs 'steps' (a fixed step budget shared by every subset size) "
            f"unless model = {PROBE!r}"
        )
    return TrainerSpec(
        model=model,
        steps=None if steps is None else r.scalar("trainer.steps", steps, int, lo=1),
        batch_size=r.scalar("trainer.batch_size", tr.get("batch_size", 128), int, lo=1),
        lr=float(r.scalar("trainer.lr", tr.get("lr", 0.05), (int, float), lo=0.0, include_lo=False)),
        device=r.scalar("trainer.device", tr.get("device", "auto"), str),
        params=r.table("trainer.params", tr.get("params", {})),
        probe=r.table("trainer.probe", tr.get("probe", {})),
    )


def _parse_selection(r: "_Reader", table: Any, methods: tuple[str, ...]) -> SelectionSpec:
    sel = r.keys("selection", ("strategy", "class_balance", "sampler", "method_params", "score_fraction",
                               "extrapolate"), table)
    origin = r.origin
    strategy = sel.get("strategy")
    if strategy is not None:
        V.check_options(r.scalar("selection.strategy", strategy, str), f"{origin}: selection.strategy", STRATEGIES)
    balance = sel.get("class_balance")
    if balance is not None:
        V.check_options(r.scalar("selection.class_balance", balance, str), f"{origin}: selection.class_balance",
                        BALANCES)
    sampler = r.scalar("selection.sampler", sel.get("sampler", "key"), str)
    V.check_options(sampler, f"{origin}: selection.sampler", SAMPLERS)
    mparams = r.table("selection.method_params", sel.get("method_params", {}))
    for m, params in mparams.items():
        if m not in methods:
            raise V.TopodataInputError(
                f"{origin}: selection.method_params has key {m!r}, which is not in methods {list(methods)}"
            )
        key = f"selection.method_params.{m}"
        check_method_params(m, r.table(key, params), name=f"{origin}: {key}")
    fraction, extrap = sel.get("score_fraction"), sel.get("extrapolate")
    if fraction is not None or extrap is not None:
        # the methods that allow it score the fraction and extrapolate; the others (random, ...) run as usual
        scored = [m for m in methods if m in EXTRAPOLABLE]
        if not scored:
            raise V.TopodataInputError(f"{origin}: selection.score_fraction: none of the methods {list(methods)} "
                                       f"can be extrapolated (those that can: {list(EXTRAPOLABLE)})")
        for m in scored:
            try:
                check_extrapolation(m, fraction, extrap, None, method_params=mparams.get(m))
            except V.TopodataInputError as exc:
                raise V.TopodataInputError(f"{origin}: selection: {exc}") from None
        fraction = float(fraction)
    return SelectionSpec(strategy=strategy, class_balance=balance, sampler=sampler, method_params=mparams,
                         score_fraction=fraction, extrapolate=extrap)


def _parse_noise(r: "_Reader", top: dict, methods: tuple[str, ...]) -> NoiseSpec | None:
    if "noise" not in top:
        return None
    nz = r.keys("noise", ("scales", "methods"), top["noise"])
    scales = r.list_of("noise.scales", nz.get("scales"), (int, float))
    for s in scales:
        if not s > 0:
            raise V.TopodataInputError(f"{r.origin}: noise.scales must be > 0 (0 is the clean run); got {s}")
    listed = r.str_list("noise.methods", nz.get("methods"), options=methods)
    for m in listed:
        if ignores_embedding(m):
            V.warn(f"{r.origin}: noise.methods lists {m!r}, which reads no features: it gets no noisy cells")
    return NoiseSpec(scales=tuple(float(s) for s in scales), methods=listed or methods)


def _parse_transfer(r: "_Reader", top: dict, methods: tuple[str, ...]) -> TransferSpec | None:
    if "transfer" not in top:
        return None
    tf = r.keys("transfer", ("embedders", "trainers", "methods"), top["transfer"])
    return TransferSpec(
        embedders=r.str_list("transfer.embedders", tf.get("embedders"), required=True),
        trainers=r.str_list("transfer.trainers", tf.get("trainers"), required=True),
        methods=r.str_list("transfer.methods", tf.get("methods"), options=methods) or methods,
    )


def _warn_ignored(origin: str, trainer: TrainerSpec, transfer: TransferSpec | None) -> None:
    """Warn about options that no cell of the pipeline would read."""
    trainers = {trainer.model, *(transfer.trainers if transfer else ())}
    if trainer.params and trainers == {PROBE}:
        V.warn(f"{origin}: trainer.params is ignored: every trainer is {PROBE!r} (its options go in trainer.probe)")
    if trainer.probe and PROBE not in trainers:
        V.warn(f"{origin}: trainer.probe is ignored: no trainer is {PROBE!r}")


class _Reader:
    """Type and key checks whose errors name the file, the dotted key and the fix."""

    def __init__(self, raw: dict, origin: str):
        self.raw, self.origin = raw, origin

    def keys(self, section: str, allowed: tuple[str, ...], table: Any = None) -> dict:
        table = self.raw if table is None else table
        where = f"[{section}]" if section else "the top level"
        if not isinstance(table, dict):
            raise V.TopodataInputError(f"{self.origin}: {section} must be a table ([{section}])")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            key = f"{section}.{unknown[0]}" if section else unknown[0]
            raise V.TopodataInputError(
                f"{self.origin}: unknown key {key!r} in {where}; allowed: {', '.join(sorted(allowed))}"
            )
        return table

    def scalar(self, key, value, types, *, required=False, lo=None, hi=None, include_lo=True):
        if value is None:
            if required:
                raise V.TopodataInputError(f"{self.origin}: missing required key {key!r}")
            return None
        if isinstance(value, bool) and types is not bool:
            raise V.TopodataInputError(f"{self.origin}: {key} must be {_tname(types)}; got {value!r}")
        if not isinstance(value, types):
            raise V.TopodataInputError(f"{self.origin}: {key} must be {_tname(types)}; got {value!r}")
        try:
            V.check_scalar(value, key, types, min_val=lo, max_val=hi, include_min=include_lo)
        except V.TopodataInputError as exc:
            raise V.TopodataInputError(f"{self.origin}: {exc}") from None
        return value

    def table(self, key, value) -> dict:
        if not isinstance(value, dict):
            raise V.TopodataInputError(f"{self.origin}: {key} must be a table, e.g. {key} = {{ k = 1 }}")
        return dict(value)

    def list_of(self, key, value, types) -> tuple:
        if value is None:
            raise V.TopodataInputError(f"{self.origin}: missing required key {key!r}")
        if not isinstance(value, list) or not value:
            raise V.TopodataInputError(f"{self.origin}: {key} must be a non-empty list; got {value!r}")
        for v in value:
            self.scalar(key + "[]", v, types)
        if len(set(value)) != len(value):
            raise V.TopodataInputError(f"{self.origin}: {key} lists a value twice: {value}")
        return tuple(value)

    def str_list(self, key, value, *, required=False, options=None) -> tuple[str, ...]:
        if value is None and not required:
            return ()
        out = self.list_of(key, value, str)
        if options is not None:
            for v in out:
                if v not in options:
                    raise V.TopodataInputError(
                        f"{self.origin}: {key} has unknown value {v!r}; choose from {sorted(options)}"
                    )
        return out


def _tname(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


# ---------------------------------------------------------------------------------------------
# the grid


def ignores_embedding(method: str) -> bool:
    """True for a method whose selection reads neither features nor training dynamics (random)."""
    spec = get_method(method)
    return not spec.needs_features and not spec.uses_dynamics


def enumerate_cells(pipeline: Pipeline, *, only_methods: tuple[str, ...] | None = None) -> list[Cell]:
    """Every cell of ``pipeline`` once, in the order they are run.

    Order: full-data cells first (they anchor the gap metric), then per seed the clean grid,
    its noisy variants and its transfer variants, so that an interrupted run already holds
    complete comparisons for the first seeds. Within one selection the trained models follow
    each other, so the selection is computed once and reused.

    A method whose selection ignores the embedding (``random``) gets no noisy cells and one
    embedder only in the transfer grid when networks are trained: those cells would repeat the
    clean one exactly (same selection, same training).
    """
    if only_methods:
        for m in only_methods:
            if m not in pipeline.methods:
                raise V.TopodataInputError(
                    f"only_methods has {m!r}, which the pipeline does not run; choose from "
                    f"{list(pipeline.methods)}"
                )
    e0, t0 = pipeline.embedder.model, pipeline.trainer.model
    tf = pipeline.transfer
    cells: dict[Cell, None] = {}  # an ordered set: a cell reached twice (e.g. A = e0, B = t0) runs once
    for seed in pipeline.seeds:
        if pipeline.full_data:  # always, even with only_methods: the gap metric needs them
            for t in dict.fromkeys([t0, *(tf.trainers if tf else ())]):
                embedders = [e0, *(tf.embedders if tf else ())] if t == PROBE else ["none"]
                for e in dict.fromkeys(embedders):
                    cells.setdefault(Cell(FULL, 0.0, seed, e, t))
    for seed in pipeline.seeds:
        for rate in pipeline.rates:
            for method in pipeline.methods:
                if only_methods and method not in only_methods:
                    continue
                cells.setdefault(Cell(method, rate, seed, e0, t0))
                blind = ignores_embedding(method)
                # noise perturbs only the selection (a probe still reads clean features), so a method
                # that ignores the embedding would repeat its clean cell exactly
                if pipeline.noise and method in pipeline.noise.methods and not blind:
                    for s in pipeline.noise.scales:
                        cells.setdefault(Cell(method, rate, seed, e0, t0, s))
                if tf and method in tf.methods:
                    for e in tf.embedders:
                        for t in tf.trainers:
                            # same selection, same training for every embedder: keep one
                            cells.setdefault(Cell(method, rate, seed, e0 if blind and t != PROBE else e, t))
    return list(cells)
