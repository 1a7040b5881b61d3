"""``topodata bench``: run a pipeline of methods × rates × seeds (and noise, transfer); resumable.

One call of :func:`topodata.bench.run_pipeline`. Finished cells are appended to ``results.csv`` at
once; running the same command again skips them and continues where the last run stopped.
"""

from __future__ import annotations

from ._warnings import one_line_warnings


def _methods(text: str) -> list[str]:
    return [m for m in text.split(",") if m]


def add_parser(subparsers, help: str):
    p = subparsers.add_parser(
        "bench", help=help,
        description=help + ". Writes results.csv (one row per finished cell), results.md (mean ± std over "
                    "seeds, a full-data row, the fraction of the Random→full gap recovered; noise and transfer "
                    "tables when the pipeline has them), accuracy_vs_rate.png (and noise.png, transfer.png), "
                    "cells/<cell-id>/ (each selection), and the pipeline file and versions beside them.",
    )
    p.add_argument("pipeline", metavar="PIPELINE.toml", help="pipeline file, e.g. pipelines/fashion_mnist.toml")
    p.add_argument("--out", metavar="DIR", help="results folder (default: runs/bench/<pipeline name>)")
    p.add_argument("--only-methods", nargs="+", type=_methods, metavar="M",
                   help="run only these methods (space- or comma-separated); full-data cells always run")
    p.add_argument("--max-cells", type=int, metavar="N", help="stop after N cells; run again to continue")
    p.add_argument("--dry-run", action="store_true", help="list the cells and which are done; compute nothing")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from topodata.bench import run_pipeline

    only = [m for group in args.only_methods for m in group] if args.only_methods else None
    with one_line_warnings("bench"):
        s = run_pipeline(args.pipeline, args.out, only_methods=only, max_cells=args.max_cells,
                         dry_run=args.dry_run, progress=args.progress)
    done = set(s.done_before) | set(s.ran)
    if args.dry_run:
        for c in s.cells:
            print(f"{'done' if c.cell_id in done else 'todo'}  {c.cell_id}")
        print(f"{len(s.cells)} cells: {len(s.done_before)} done, {s.n_left} to run -> {s.out_dir}")
        return 0
    print(f"{len(s.cells)} cells: {len(s.done_before)} done before, {len(s.ran)} run now, "
          f"{len(s.failed)} failed, {s.n_left} left -> "
          f"{next((f for f in s.files if f.name.endswith('results.md')), s.out_dir / 'results.md')}")
    if s.failed:
        print(f"failed cells (rerun to retry; tracebacks in {s.out_dir / 'errors.log'}): {', '.join(s.failed)}")
    return 1 if s.failed else 0
