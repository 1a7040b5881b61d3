"""``topodata timp``: iterative magnitude pruning (IMP) and its topological variant (T-IMP).

One call of :func:`topodata.pipeline.prune_dataset` (load, build, :func:`topodata.weights.iterative_pruning`); writes ``rounds.csv``, ``rounds.png``,
``manifest.json`` and ``model.pt`` (the final pruned model, masks included) atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._validation import TopodataInputError

DESCRIPTION = """\
Lottery-ticket IMP with weight rewinding: train, prune a fraction of the remaining weights by
magnitude so that --rounds rounds reach --target-sparsity exactly (sparsity after round r:
1 - (1 - target)^(r / rounds)), rewind the survivors to their values after --rewind-step optimiser
steps of the first training (0 = initialisation), retrain, repeat. --mode timp keeps each layer's
maximum-spanning-tree weights before filling the budget by magnitude (Balwani & Krzyston 2022).

--scope global: one magnitude threshold over all layers; the network keeps N - floor(s N) weights.
--scope layer: one threshold per layer; every layer keeps n_l - floor(s n_l) weights.
Only the weights of linear and conv layers are pruned (biases and batch norms stay dense).

Writes into --out: rounds.csv (per round: test accuracy, sparsity, neural persistence per layer,
fraction of each layer's spanning tree kept), rounds.png (accuracy and NP vs sparsity),
manifest.json and model.pt (final model with its masks; `topodata np --checkpoint RUN/model.pt`).
"""


def add_parser(subparsers, help: str):
    p = subparsers.add_parser("timp", help=help, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, metavar="SPEC", help="digits | mnist | fashion-mnist | cifar10 | ...")
    p.add_argument("--model", default="lenet300100",
                   help="mlp | smallcnn | resnet18 | lenet300100 (default: lenet300100)")
    p.add_argument("--target-sparsity", type=float, required=True,
                   help="fraction of prunable weights removed after the last round, in (0, 1)")
    p.add_argument("--rounds", type=int, required=True, help="pruning rounds (>= 1)")
    p.add_argument("--mode", choices=["imp", "timp"], default="imp", help="default: imp")
    p.add_argument("--scope", choices=["global", "layer"], default="global",
                   help="magnitude threshold over the whole network or per layer (default: global)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of every (re)training (default: 2)")
    p.add_argument("--rewind-step", type=int, default=0,
                   help="rewind survivors to their values after this many steps of the first training "
                        "(default: 0 = initialisation)")
    p.add_argument("--batch-size", type=int, default=128, help="default: 128")
    p.add_argument("--augment", choices=["none", "auto", "crop", "crop-flip"], default="none",
                   help="training augmentation (default: none, the lottery-ticket setting for LeNet; "
                        "auto = random crops for images, as topodata train)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: fit's, 0.05 for SGD)")
    p.add_argument("--conv", choices=["aggregate", "aggregate-l2", "toeplitz"], default="aggregate",
                   help="graph of a convolution for the spanning tree and NP (default: aggregate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and training (default: 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument("--root", default=None, help="folder holding torchvision dataset files, if any")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="output folder")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from topodata._io import atomic_write_files, json_bytes
    from topodata.pipeline import prune_dataset
    from topodata.weights import checkpoint_bytes

    if args.out.exists() and not args.out.is_dir():
        raise TopodataInputError(f"--out {args.out} exists and is not a directory")
    if not 0.0 < args.target_sparsity < 1.0:
        raise TopodataInputError(f"--target-sparsity must be in (0, 1); got {args.target_sparsity}")
    fit_params = {"batch_size": args.batch_size, "augment": args.augment}
    if args.lr is not None:
        fit_params["lr"] = args.lr
    run_, manifest = prune_dataset(
        args.dataset, model=args.model, target_sparsity=args.target_sparsity, rounds=args.rounds,
        random_state=args.seed, root=args.root, progress=not args.quiet, mode=args.mode, scope=args.scope,
        epochs=args.epochs, rewind_step=args.rewind_step, conv=args.conv, fit_params=fit_params,
        device=args.device,
    )
    atomic_write_files(args.out, {
        "rounds.csv": run_.to_csv().encode(),
        "rounds.png": run_.plot_png(),
        "manifest.json": json_bytes(manifest),
        "model.pt": checkpoint_bytes(run_.model, model_name=args.model, input_shape=tuple(manifest["input_shape"]),
                                     n_classes=manifest["n_classes"]),
    })
    if not args.quiet:
        print(f"{'round':>5} {'sparsity':>9} {'test_acc':>9} {'NP_mean':>8} {'tree_kept':>9}")
        for r in run_.rounds:
            print(f"{r['round']:>5} {r['sparsity']:>9.4f} {r['test_accuracy']:>9.4f} {r['np_mean']:>8.4f} "
                  f"{r['tree_kept']:>9.4f}")
        print(f"wrote {args.out}/rounds.csv, rounds.png, manifest.json, model.pt", file=sys.stderr)
    return 0
