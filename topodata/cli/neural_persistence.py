"""``topodata np``: neural persistence, or critical compression, of a network's layers.

Two modes, each one library call:

- ``topodata np --checkpoint C [--model M] [--dataset D | --input-shape C H W --classes K]``:
  :func:`topodata.weights.neural_persistence` of a saved model, one row per layer;
- ``topodata np --critical (--arch A --input-shape C H W --classes K | --checkpoint C ...)``:
  :func:`topodata.weights.critical_compression` from shapes, plus, for a checkpoint holding
  pruning masks, the fraction of each layer's spanning tree the masks keep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._validation import TopodataInputError

DESCRIPTION = """\
Neural persistence (Rieck et al. 2019) of every linear and convolutional layer: the layer is a
bipartite graph weighted by |w| / max|w| (max over the network or the layer: --normalization); each
edge of its maximum spanning tree gives the diagram point (1, w'); NP_p = (sum |1 - w'|^p)^(1/p),
normalised by (n_in + n_out - 1)^(1/p). Convolutions become in-channel x out-channel graphs with each
kernel reduced to its largest |w| (--conv aggregate, default), its L2 norm, or, for small inputs,
the full unrolled (Toeplitz) graph.

With --critical: the topologically critical compression ratio eta_tau = |W| / |MST| per layer and
for the conv layers, the dense layers and the whole network, from shapes alone (Balwani & Krzyston
2022). --reading paper (default): a conv layer is one channel pair's graph, n = H'*W' outputs joined
to the f1*f2 taps of their windows over m = (H'+2p)*(W'+2p) padded inputs (reproduces the paper's
Table 1 where a consistent reading does; see scripts/report_table1.py); --reading unrolled: the
whole unrolled graph, m = C_in*H*W inputs and n = C_out*H'*W' outputs.
"""


def add_parser(subparsers, help: str):
    p = subparsers.add_parser("np", help=help, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, metavar="C",
                   help="model checkpoint: the model.pt of `topodata timp`, or a state_dict saved with "
                        "torch.save (then --model and shapes are needed)")
    p.add_argument("--model", default=None,
                   help="model name for topodata.embed.build_model (mlp, smallcnn, resnet18, lenet300100); "
                        "default: the one recorded in the checkpoint")
    p.add_argument("--dataset", default=None, metavar="SPEC",
                   help="take the input shape and class count from this dataset (e.g. digits)")
    p.add_argument("--input-shape", type=int, nargs="+", default=None, metavar="N",
                   help="shape of one input, e.g. 3 32 32")
    p.add_argument("--classes", type=int, default=None, help="number of classes")
    p.add_argument("--p", type=float, default=2.0, help="exponent of the p-norm, >= 1 (default: 2)")
    p.add_argument("--normalization", choices=["global", "layer"], default="global",
                   help="divide |w| by the largest |w| of the whole network or of each layer (default: global)")
    p.add_argument("--conv", choices=["aggregate", "aggregate-l2", "toeplitz"], default="aggregate",
                   help="graph of a convolution (default: aggregate = channel graph, max |w| per kernel)")
    p.add_argument("--critical", action="store_true",
                   help="print the critical compression table instead of neural persistence")
    p.add_argument("--reading", choices=["paper", "unrolled"], default="paper",
                   help="with --critical: a conv layer as one channel pair's graph (default, the paper's "
                        "formula) or as the whole unrolled graph")
    p.add_argument("--arch", choices=["vgg11", "resnet20", "resnet18", "lenet300100"], default=None,
                   help="with --critical: a named architecture's shapes (no weights needed)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
    return p


def _shapes(args, need: bool) -> tuple[tuple[int, ...] | None, int | None]:
    shape, classes = args.input_shape, args.classes
    if args.dataset is not None:
        from topodata.data import load_dataset

        ds = load_dataset(args.dataset, progress=False)
        shape = shape or list(ds.input_shape)
        classes = classes if classes is not None else int(ds.n_classes)
    if need and (shape is None or classes is None):
        raise TopodataInputError("--arch needs --input-shape C H W and --classes K (or --dataset SPEC)")
    return (tuple(shape) if shape is not None else None), classes


def run(args) -> int:
    from topodata.weights import critical_compression, load_checkpoint, neural_persistence

    if (args.checkpoint is None) == (args.arch is None):
        raise TopodataInputError("give exactly one of --checkpoint C or --arch A (--arch needs --critical)")
    if args.arch is not None and not args.critical:
        raise TopodataInputError("--arch describes shapes only; add --critical for the compression table")
    shape, classes = _shapes(args, need=args.arch is not None)
    if args.arch is not None:
        table = critical_compression(args.arch, input_shape=shape, n_classes=classes, reading=args.reading)
        print(json.dumps(table.to_dict(), indent=2) if args.json else table.table())
        return 0
    model, meta = load_checkpoint(args.checkpoint, model=args.model, input_shape=shape, n_classes=classes)
    if args.critical:
        table = critical_compression(model, input_shape=meta["input_shape"], masks=True, conv=args.conv,
                                     reading=args.reading)
        table.title = f"{meta['model']} ({args.checkpoint}) on {'x'.join(map(str, meta['input_shape']))} inputs"
        print(json.dumps(table.to_dict(), indent=2) if args.json else table.table())
        return 0
    res = neural_persistence(model, p=args.p, normalization=args.normalization, conv=args.conv,
                             input_shape=meta["input_shape"])
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "model": meta["model"], **res.to_dict()}, indent=2))
    else:
        print(f"neural persistence of {meta['model']} ({args.checkpoint})")
        print(res.table())
    return 0
