"""``topodata report DIR``: write a self-contained ``report.html`` into a selection folder.

The command body is one call of :func:`topodata.report.write_report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers, help: str):
    p = subparsers.add_parser(
        "report",
        help=help,
        description=(
            "Write DIR/report.html for a folder written by `topodata select`: the run's summary, per class "
            "galleries of kept samples, of samples dropped as likely noise (the beta cut, with their given "
            "label and their neighbours' majority label), of the most redundant samples (if DIR has "
            "dedup_groups.npy) and of a random sample of dropped ones; a 2-D view of the features and the "
            "score histograms with the coverage strata and the cut. Images are embedded: the file opens "
            "from disk with no network."
        ),
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the --out folder of `topodata select`")
    p.add_argument("--dataset", metavar="SPEC", default=None,
                   help="where images and labels come from (default: the manifest's dataset)")
    p.add_argument("--labels", metavar="Y.npy", type=Path, default=None,
                   help="labels, needed for selections made from --embeddings")
    p.add_argument("--embeddings", metavar="F.npy", type=Path, default=None,
                   help="features for the neighbours' majority label and the 2-D view (default: the "
                        "selection's --embeddings file or cached embedding, else the raw inputs)")
    p.add_argument("--root", default=None, help="folder holding torchvision dataset files, if any")
    p.add_argument("--max-per-gallery", type=int, default=24,
                   help="thumbnails per gallery at most (default: 24)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random sample of dropped samples and of the PCA (default: 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from topodata.report import write_report

    path = write_report(
        args.dir, dataset=args.dataset, labels=args.labels, features=args.embeddings, root=args.root,
        max_per_gallery=args.max_per_gallery, random_state=args.seed, progress=not args.quiet,
    )
    if not args.quiet:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0
