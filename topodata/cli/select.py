"""``topodata select``: choose the samples to keep and export their indices (DESIGN.md §4.1).

The command body is one call of :func:`topodata.select.select` (plus, with ``--dataset``, the cached
embedding stage). Method hyper-parameters become options generated from each method's config
dataclass: TopoPrune's as ``--<field>``, the baselines' as ``--<method>-<field>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import TopodataInputError, check_rate

MAIN_METHOD = "topoprune"  # its options carry no prefix

DEFAULT_EMBEDDER = {"digits": "mlp", "mnist": "smallcnn", "fashion-mnist": "smallcnn",
                    "cifar10": "resnet18", "cifar100": "resnet18"}


def _method_config(name: str):
    """The dataclass holding a method's hyper-parameters, or None if it has none."""
    from topodata.scores import METHODS

    module = importlib.import_module(METHODS[name].target.split(":")[0])
    configs = getattr(module, "CONFIGS", None)
    if isinstance(configs, dict) and name in configs:
        return configs[name]
    return getattr(module, "CONFIG", None)


def _option_name(method: str, field: str) -> str:
    stem = field.replace("_", "-")
    return f"--{stem}" if method == MAIN_METHOD else f"--{method}-{stem}"


def _dest(method: str, field: str) -> str:
    return f"mp__{method}__{field}"


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    from topodata.scores import METHODS

    for name, spec in METHODS.items():
        try:
            config = _method_config(name)
        except ImportError:  # a method whose module is not there yet
            continue
        if config is None or not dataclasses.is_dataclass(config):
            continue
        group = parser.add_argument_group(
            f"{name} options", f"{spec.summary} (used with --method {name})"
        )
        for f in dataclasses.fields(config):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            ftype = f.type if isinstance(f.type, type) else {
                "int": int, "float": float, "str": str, "bool": bool,
            }.get(str(f.type).replace("typing.", ""), str)
            kwargs: dict[str, Any] = {"dest": _dest(name, f.name), "default": default}
            if ftype is bool:
                kwargs.update(type=_bool, metavar="{true,false}")
            elif ftype in (int, float):
                kwargs.update(type=ftype, metavar=ftype.__name__.upper())
            else:
                kwargs.update(type=str, metavar="STR")
            choices = f.metadata.get("choices")
            if choices:
                kwargs["choices"] = list(choices)
                kwargs.pop("metavar", None)
            help_text = f.metadata.get("help", "")
            kwargs["help"] = f"{help_text} (default: {default})"
            group.add_argument(_option_name(name, f.name), **kwargs)


def add_parser(subparsers, help: str):
    from topodata.scores import METHODS

    methods = "\n".join(f"  {n:<11} {s.summary}" for n, s in METHODS.items())
    p = subparsers.add_parser(
        "select",
        help=help,
        description=(
            "Choose which training samples to keep and write indices.npy, indices.txt, scores.npy and "
            "manifest.json into --out (atomically: a failed run leaves nothing behind).\n\n"
            "Kept count = n - floor(rate * n) for n training samples; per-class budgets sum exactly to it.\n"
            "Same inputs and --seed give byte-identical indices.npy.\n\nMethods:\n" + methods
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("input (one of)")
    src.add_argument("--dataset", metavar="SPEC",
                     help="digits | mnist | fashion-mnist | cifar10 | cifar100 | npz:PATH | imagefolder:PATH; "
                          "features come from the cached embedding stage (see `topodata embed`)")
    src.add_argument("--embeddings", metavar="F.npy", type=Path,
                     help="precomputed features of shape (n_samples, n_features); skips the embed stage")
    src.add_argument("--labels", metavar="Y.npy", type=Path,
                     help="integer labels of shape (n_samples,), required with --embeddings")
    src.add_argument("--scores", metavar="S.npy", type=Path,
                     help="your own per-sample scores of shape (n_samples,), higher = harder (e.g. a "
                          "scores.npy this command wrote, to re-select at another --rate or --beta); no "
                          "method runs. Labels from --labels or --dataset (no embedding stage)")
    p.add_argument("--rate", type=float, required=True,
                   help="fraction of training samples REMOVED, strictly between 0 and 1 "
                        "(0.9 keeps n - floor(0.9 n), i.e. about 10%%)")
    p.add_argument("--method", default=None, choices=list(METHODS),
                   help="scoring/selection method (default: topoprune; not with --scores)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every random choice in the selection (default: 0)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder (created if missing; existing files of the same names are replaced)")
    p.add_argument("--class-balance", choices=["proportional", "balanced"], default="proportional",
                   help="per-class budgets: proportional to class sizes (largest remainder) or as equal "
                        "as possible (default: proportional)")
    p.add_argument("--strategy", choices=["coverage", "hard", "easy", "random"], default=None,
                   help="how scores become a subset: coverage strata (CCS-style), keep hardest, keep "
                        "easiest, or ignore scores; default: the method's own (coverage for topoprune)")
    p.add_argument("--beta", default="auto",
                   help="under coverage: most-scored fraction dropped per class as likely noise; 'auto' "
                        "grows with the rate: max(0, 0.25 (rate - 0.5)), for topoprune at most 0.075 "
                        "(default: auto)")
    p.add_argument("--n-strata", type=int, default=50,
                   help="under coverage: number of equal-width score strata (default: 50)")
    p.add_argument("--sampler", choices=["draw", "key"], default="key",
                   help="under coverage: the members of each stratum with the smallest of one random key "
                        "per sample, drawn once from the seed (stable when the scores shift, e.g. under "
                        "embedding noise), or a fresh seeded draw inside each stratum (default: key)")
    p.add_argument("--plot", action="store_true",
                   help="also write manifold.png (2-D view, kept samples highlighted) and diagrams.png "
                        "(a few neighbourhoods' persistence diagrams) when the method provides them")
    emb = p.add_argument_group("embedding stage (with --dataset)")
    emb.add_argument("--model", default=None,
                     help="embedding model: mlp | smallcnn | resnet18 (default: mlp for digits, smallcnn "
                          "for (fashion-)mnist, resnet18 for cifar)")
    emb.add_argument("--proxy-fraction", type=float, default=1.0,
                     help="fraction of the training split the proxy model trains on (seeded, class-"
                          "stratified); features are extracted for all samples (default: 1.0)")
    emb.add_argument("--embed-seed", type=int, default=0,
                     help="seed of the proxy training; kept apart from --seed so that several selection "
                          "seeds share one cached embedding (default: 0)")
    emb.add_argument("--epochs", type=int, default=None,
                     help="proxy training epochs (default: the model's documented default)")
    emb.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="device for the embed stage (default: auto = cuda when present)")
    emb.add_argument("--root", default=None,
                     help="folder holding torchvision dataset files (cifar, mnist), if any")
    _add_method_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def _load_array(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt or non-.npy file: one line, exit 2
        raise TopodataInputError(f"cannot read {what} file {path}: {type(exc).__name__}: {exc}") from None


def _method_params(args, method: str) -> dict[str, Any]:
    prefix = f"mp__{method}__"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def run(args) -> int:
    from topodata.select import save_selection, select

    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if args.scores is not None:
        if args.method is not None or args.embeddings is not None:
            raise TopodataInputError("--scores replaces the method: give it without --method and --embeddings")
        if (args.dataset is None) == (args.labels is None):
            raise TopodataInputError("--scores needs the labels: give exactly one of --labels Y.npy or --dataset SPEC")
    elif (args.dataset is None) == (args.embeddings is None):
        raise TopodataInputError("give exactly one of --dataset SPEC or --embeddings F.npy --labels Y.npy")
    if args.embeddings is not None and args.labels is None:
        raise TopodataInputError("--embeddings needs --labels Y.npy")
    check_rate(args.rate, name="--rate")  # before the (possibly long) embed stage
    beta = args.beta if args.beta == "auto" else _float_option(args.beta, "--beta")
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {args.out} exists and is not a directory")

    from topodata.scores import METHODS

    method = args.method or MAIN_METHOD
    spec = METHODS[method]
    timings: dict[str, float] = {}
    dynamics = None
    scores = None
    embed_info: dict[str, Any] = {}
    if args.scores is not None:
        t0 = time.perf_counter()
        scores = _load_array(args.scores, "--scores")
        if args.labels is not None:
            labels, dataset_name = _load_array(args.labels, "--labels"), f"labels:{args.labels}"
        else:
            from topodata.data import load_dataset

            labels, dataset_name = load_dataset(args.dataset, root=args.root, progress=not args.quiet).y_train, args.dataset
        features = None
        timings["load"] = time.perf_counter() - t0
    elif args.embeddings is not None:
        t0 = time.perf_counter()
        features = _load_array(args.embeddings, "--embeddings")
        labels = _load_array(args.labels, "--labels")
        timings["load"] = time.perf_counter() - t0
        dataset_name = f"embeddings:{args.embeddings}"
    else:
        dataset_name = args.dataset
        t0 = time.perf_counter()
        if not spec.needs_features:
            from topodata.data import load_dataset

            ds = load_dataset(args.dataset, root=args.root, progress=not args.quiet)
            labels = ds.y_train
            features = np.empty((labels.shape[0], 0))
            timings["load"] = time.perf_counter() - t0
        else:
            from topodata.embed import embed_cached

            base = args.dataset.split(":")[0]
            model = args.model or DEFAULT_EMBEDDER.get(base, "smallcnn")
            emb = embed_cached(
                args.dataset, model=model, proxy_fraction=args.proxy_fraction,
                random_state=args.embed_seed, epochs=args.epochs, device=args.device,
                root=args.root, progress=not args.quiet,
            )
            features, labels = emb.features, emb.labels
            dynamics = getattr(emb, "dynamics", None)
            timings["embed"] = time.perf_counter() - t0
            embed_info = {"model": model, "proxy_fraction": args.proxy_fraction, "embed_seed": args.embed_seed,
                          "cache": str(getattr(emb, "cache_path", "")) or None,
                          "proxy_test_accuracy": emb.manifest.get("proxy_test_accuracy")}

    result = select(
        features, labels, rate=args.rate, method=None if scores is not None else method, random_state=args.seed,
        class_balance=args.class_balance, strategy=args.strategy, beta=beta, n_strata=args.n_strata,
        sampler=args.sampler, dynamics=dynamics, dataset=dataset_name, scores=scores,
        method_params=None if scores is not None else _method_params(args, method),
    )
    result.manifest["timings_s"] = {**timings, **result.manifest["timings_s"]}
    if embed_info:
        result.manifest["embedding"] = embed_info

    extra: dict[str, bytes] = {}
    if args.plot:
        t0 = time.perf_counter()
        extra = _plots(result, labels)
        result.manifest["timings_s"]["plot"] = time.perf_counter() - t0
        if not extra:
            log(f"--plot: method {result.manifest['method']!r} provides no manifold or diagrams; no picture written")
    paths = save_selection(result, args.out, extra_files=extra)
    if not args.quiet:
        _summary(result, paths)
    return 0


def _float_option(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise TopodataInputError(f"{name} must be a number or 'auto'; got {text!r}") from None


def _plots(result, labels) -> dict[str, bytes]:
    from topodata import plots

    out = {}
    z = result.extras.get("manifold")
    if z is not None:
        out["manifold.png"] = plots.plot_manifold(z, labels, result.indices)
    diagrams = result.extras.get("neighbourhoods")
    if diagrams:
        out["diagrams.png"] = plots.plot_diagrams(diagrams)
    return out


def _summary(result, paths) -> None:
    m = result.manifest
    print(f"kept {m['n_kept']} of {m['n_total']} samples (rate {m['rate']}, method {m['method']}, seed {m['seed']})")
    counts = m["class_counts_kept"]
    print("kept per class: " + ", ".join(f"{c}: {k}" for c, k in counts.items()))
    print("time per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in m["timings_s"].items()))
    print(f"wrote {', '.join(p.name for p in paths)} to {paths[0].parent}")
