"""``topodata select``: choose the samples to keep and export their indices.

A parser plus one call of :func:`topodata.pipeline.select_dataset` (load, cached embedding,
select), then the files. Method hyper-parameters become options generated from each method's
config dataclass: TopoPrune's as ``--<field>``, the baselines' as ``--<method>-<field>``; the
chosen method's are checked by that dataclass before any data is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .._validation import TopodataInputError, check_rate
from ..pipeline import MAIN_METHOD, check_method_params, select_dataset
from ..pipeline import method_config as _method_config
from ..scores import METHODS
from ..select import save_selection
from ._warnings import one_line_warnings


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
    _add_input_options(p)
    _add_selection_options(p)
    _add_embedding_options(p)
    _add_extrapolation_options(p)
    _add_method_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def _add_input_options(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("input (one of)")
    src.add_argument("--dataset", metavar="SPEC",
                     help="digits | mnist | fashion-mnist | cifar10 | cifar100 | npz:PATH | imagefolder:PATH; "
                          "features come from the cached embedding stage (see `topodata embed`)")
    src.add_argument("--embeddings", metavar="F.npy", type=Path,
                     help="precomputed features of shape (n_samples, n_features); skips the embed stage")
    src.add_argument("--labels", metavar="Y.npy", type=Path,
                     help="labels of shape (n_samples,), required with --embeddings: class ids, or class names "
                          "(strings, negative integers), numbered in sorted order (the manifest's 'classes')")
    src.add_argument("--scores", metavar="S.npy", type=Path,
                     help="your own per-sample scores of shape (n_samples,), higher = harder (e.g. a "
                          "scores.npy this command wrote, to re-select at another --rate or --beta); no "
                          "method runs. Labels from --labels or --dataset (no embedding stage)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder (created if missing; existing files of the same names are replaced)")


def _add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, required=True,
                   help="fraction of training samples REMOVED, strictly between 0 and 1 "
                        "(0.9 keeps n - floor(0.9 n), i.e. about 10%%)")
    p.add_argument("--method", default=None, choices=list(METHODS),
                   help="scoring/selection method (default: topoprune; not with --scores)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every random choice in the selection (default: 0)")
    p.add_argument("--class-balance", choices=["proportional", "balanced", "boundary"], default=None,
                   help="per-class budgets: proportional to class sizes (largest remainder), as equal as "
                        "possible, or boundary: half by class size, half by each class's share of feature "
                        "neighbours in another class (classes that touch others get more); default: the "
                        "method's own (boundary for topoprune, proportional otherwise)")
    p.add_argument("--strategy", choices=["coverage", "hard", "easy", "random"], default=None,
                   help="how scores become a subset: coverage strata (CCS-style), keep hardest, keep "
                        "easiest, or ignore scores; default: the method's own (coverage for topoprune)")
    p.add_argument("--beta", default="auto",
                   help="under coverage: most-scored fraction dropped per class as likely noise; 'auto' "
                        "grows with the rate: max(0, 0.25 (rate - 0.5)), for topoprune at most 0.075 and "
                        "at most the share of samples whose feature neighbours mostly carry another label, "
                        "then raised per class to the share flagged as likely label errors (default: auto)")
    p.add_argument("--n-strata", type=int, default=50,
                   help="under coverage: number of equal-width score strata (default: 50)")
    p.add_argument("--sampler", choices=["draw", "key"], default="key",
                   help="under coverage: the members of each stratum with the smallest of one random key "
                        "per sample, drawn once from the seed (stable when the scores shift, e.g. under "
                        "embedding noise), or a fresh seeded draw inside each stratum (default: key)")
    p.add_argument("--dedup", default=None, metavar="{auto,off,T}",
                   help="near-duplicate groups (topodata.dedup): one member per group is kept before any group "
                        "gives a second; auto = automatic threshold, a number = that L2 distance between "
                        "L2-normalised features, off; default: the method's own")
    p.add_argument("--dedup-space", choices=["auto", "images", "features"], default="auto",
                   help="where near-duplicates are looked for: in the pixels of an image dataset (copies "
                        "compared at their best shift of up to 2 px; a --dedup number is then a root-mean-"
                        "square pixel difference), or in the proxy features; auto = pixels for image "
                        "datasets, features otherwise (default: auto)")
    p.add_argument("--engine", choices=["inprocess", "ray"], default="inprocess",
                   help="where the independent pieces of the method run (topoprune: per-class local topology "
                        "and flow, manifold placement batches): in this process, or as Ray tasks on a local Ray "
                        "or the cluster at --ray-address (pip install 'topodata[ray]'); same --seed, same "
                        "indices (default: inprocess)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --engine ray: the Ray cluster to join, e.g. auto (the cluster this machine "
                        "belongs to) or ray://HEAD:10001 (default: start a local Ray with this machine's CPUs)")
    p.add_argument("--plot", action="store_true",
                   help="also write manifold.png (2-D view, kept samples highlighted) and diagrams.png "
                        "(a few neighbourhoods' persistence diagrams) when the method provides them")
    p.add_argument("--report", action="store_true",
                   help="also write report.html: what was kept and dropped, with images (see `topodata report`)")


def _add_embedding_options(p: argparse.ArgumentParser) -> None:
    emb = p.add_argument_group("embedding stage (with --dataset)")
    emb.add_argument("--model", default=None,
                     help="embedding model: mlp | smallcnn | resnet18 (default: mlp for digits, smallcnn "
                          "for (fashion-)mnist, resnet18 for cifar)")
    emb.add_argument("--proxy-fraction", type=float, default=None,
                     help="fraction of the training split the proxy model trains on (seeded, class-"
                          "stratified); features are extracted for all samples (default: 1.0)")
    emb.add_argument("--embed-seed", type=int, default=None,
                     help="seed of the proxy training; kept apart from --seed so that several selection "
                          "seeds share one cached embedding (default: 0)")
    emb.add_argument("--epochs", type=int, default=None,
                     help="proxy training epochs (default: the model's documented default)")
    emb.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                     help="device for the embed stage (default: auto = cuda when present)")
    emb.add_argument("--root", default=None,
                     help="folder holding torchvision dataset files (cifar, mnist), if any")


def _add_extrapolation_options(p: argparse.ArgumentParser) -> None:
    ex = p.add_argument_group(
        "score extrapolation (topodata.extrapolate)",
        "score a fraction, predict the rest: the proxy trains on the seeded fraction, the method scores only "
        "it, and the extrapolator predicts the other samples' scores before the strategy runs on all of them. "
        "For el2n, forgetting, aum, ccs, d2 (its node score) and topoprune.")
    ex.add_argument("--score-fraction", type=float, default=None, metavar="F",
                    help="fraction (0 < F < 1) of the training split that is scored; the proxy trains on the same "
                         "seeded class-stratified fraction unless --proxy-fraction 1.0 (default: off, score all)")
    ex.add_argument("--extrapolate", choices=["knn", "gnn"], default=None,
                    help="knn: exp(-distance)-weighted mean score of the k nearest scored samples (FAISS); gnn: a "
                         "3-layer GCN (PyTorch Geometric) on the kNN graph of all samples, trained on the known "
                         "scores (default: knn)")
    ex.add_argument("--extrapolate-k", type=int, default=None, metavar="K",
                    help="knn: scored neighbours averaged (default 20); gnn: neighbours per node of the graph "
                         "(default 10)")
    ex.add_argument("--extrapolate-weighting", choices=["exp", "mean"], default=None,
                    help="knn only: weights exp(-distance) or a plain mean (default: exp)")
    ex.add_argument("--extrapolate-epochs", type=int, default=None, metavar="E",
                    help="gnn only: full-batch training epochs (default 100)")
    ex.add_argument("--extrapolate-hidden", default=None, metavar="H1,H2",
                    help="gnn only: widths of the two hidden GCN layers (default 512,256, the paper's; narrower "
                         "layers are much cheaper on a CPU)")


def _extrapolate_params(args) -> dict[str, Any] | None:
    """The extrapolator options given on the command line (checked by select_dataset before loading)."""
    given = {"k": args.extrapolate_k, "weighting": args.extrapolate_weighting, "epochs": args.extrapolate_epochs}
    if args.extrapolate_hidden is not None:
        try:
            given["hidden"] = tuple(int(v) for v in args.extrapolate_hidden.split(","))
        except ValueError:
            raise TopodataInputError(
                f"--extrapolate-hidden must be two comma-separated widths such as 512,256; got {args.extrapolate_hidden!r}"
            ) from None
    given = {k: v for k, v in given.items() if v is not None}
    return given or None


def _method_params(args, method: str) -> dict[str, Any]:
    prefix = f"mp__{method}__"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _check_sources(args) -> None:
    """Exactly one input: --dataset, --embeddings with --labels, or --scores with labels."""
    if args.scores is not None:
        if args.method is not None or args.embeddings is not None:
            raise TopodataInputError("--scores replaces the method: give it without --method and --embeddings")
        if (args.dataset is None) == (args.labels is None):
            raise TopodataInputError("--scores needs the labels: give exactly one of --labels Y.npy or --dataset SPEC")
    elif (args.dataset is None) == (args.embeddings is None):
        raise TopodataInputError("give exactly one of --dataset SPEC or --embeddings F.npy --labels Y.npy")
    if args.embeddings is not None and args.labels is None:
        raise TopodataInputError("--embeddings needs --labels Y.npy")
    if args.dataset is not None and args.labels is not None and args.scores is None:
        raise TopodataInputError("--labels goes with --embeddings or --scores; --dataset brings its own labels")
    if args.out.exists() and not args.out.is_dir():
        raise TopodataInputError(f"--out {args.out} exists and is not a directory")


def _checked_method_params(args, method: str) -> dict[str, Any]:
    """The chosen method's options, each checked by its config dataclass before any data is loaded."""
    params = _method_params(args, method)
    for field, value in params.items():  # one at a time, so that the message names the option
        check_method_params(method, {field: value}, name=_option_name(method, field))
    return check_method_params(method, params, name=f"--method {method} options")


def _warn_ignored_options(args, method: str | None) -> None:
    """Warn about method options set away from their default for a method that does not run."""
    for name in METHODS:
        if name == method:
            continue
        defaults = _method_defaults(name)
        for field, value in _method_params(args, name).items():
            if value != defaults.get(field):
                used = f"--method {method}" if method else "--scores"
                warnings.warn(f"{_option_name(name, field)} is an option of --method {name}; {used} ignores it",
                              UserWarning, stacklevel=2)


def _method_defaults(name: str) -> dict[str, Any]:
    config = _method_config(name)
    if config is None:
        return {}
    return {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}


def run(args) -> int:
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    # --- checks: every option before the (possibly long) load and embed stages
    _check_sources(args)
    check_rate(args.rate, name="--rate")
    beta = args.beta if args.beta == "auto" else _float_option(args.beta, "--beta")
    _check_dedup(args.dedup)
    method = None if args.scores is not None else (args.method or MAIN_METHOD)
    params = _checked_method_params(args, method) if method is not None else None
    with one_line_warnings("select"):
        _warn_ignored_options(args, method)
        # --- load, embed, select: one library call
        result = select_dataset(
            args.dataset, rate=args.rate, method=method, random_state=args.seed,
            features=args.embeddings, labels=args.labels, scores=args.scores,
            model=args.model, proxy_fraction=args.proxy_fraction, embed_seed=args.embed_seed,
            epochs=args.epochs, device=args.device, root=args.root, progress=not args.quiet,
            class_balance=args.class_balance, strategy=args.strategy, beta=beta, n_strata=args.n_strata,
            sampler=args.sampler, dedup=args.dedup, dedup_space=args.dedup_space, method_params=params,
            engine=args.engine, ray_address=args.ray_address,
            score_fraction=args.score_fraction, extrapolate=args.extrapolate,
            extrapolate_params=_extrapolate_params(args),
        )
    # --- plots, files, summary
    extra = _plot_files(args, result, log)
    paths = save_selection(result, args.out, extra_files=extra)
    if args.report:
        from topodata.report import write_report

        paths.append(write_report(args.out, labels=result.extras["labels"], root=args.root, progress=not args.quiet))
    if not args.quiet:
        _summary(result, paths)
    return 0


def _check_dedup(text: str | None) -> None:
    """``--dedup`` is a word or a positive distance; select() reads the same text."""
    if text is None or text.lower() in ("auto", "on", "true", "off", "false"):
        return
    try:
        ok = float(text) > 0
    except ValueError:
        ok = False
    if not ok:
        raise TopodataInputError(f"--dedup must be auto, off or a positive distance threshold; got {text!r}")


def _plot_files(args, result, log) -> dict[str, bytes]:
    if not args.plot:
        return {}
    t0 = time.perf_counter()
    extra = _plots(result, result.extras["labels"])
    result.manifest["timings_s"]["plot"] = time.perf_counter() - t0
    if not extra:
        log(f"--plot: method {result.manifest['method']!r} provides no manifold or diagrams; no picture written")
    return extra


def _float_option(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise TopodataInputError(f"{name} must be a number or 'auto'; got {text!r}") from None


def _plots(result, labels) -> dict[str, bytes]:
    import numpy as np

    from topodata import plots  # matplotlib: only with --plot

    out = {}
    z = result.extras.get("manifold")
    if z is not None:
        rows = result.extras.get("method_rows")  # the near-duplicate pool, when the method saw only it
        kept = result.indices if rows is None else np.flatnonzero(np.isin(rows, result.indices))
        out["manifold.png"] = plots.plot_manifold(z, labels if rows is None else np.asarray(labels)[rows], kept)
    diagrams = result.extras.get("neighbourhoods")
    if diagrams:
        out["diagrams.png"] = plots.plot_diagrams(diagrams)
    return out


def _summary(result, paths) -> None:
    m = result.manifest
    print(f"kept {m['n_kept']} of {m['n_total']} samples (rate {m['rate']}, method {m['method']}, seed {m['seed']})")
    counts, names = m["class_counts_kept"], m.get("classes")
    print("kept per class: " + ", ".join(f"{c if names is None else names[int(c)]}: {k}" for c, k in counts.items()))
    print("time per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in m["timings_s"].items()))
    print(f"wrote {', '.join(p.name for p in paths)} to {paths[0].parent}")
