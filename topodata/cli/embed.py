"""``topodata embed``: train a proxy model and write penultimate-layer features (one library call)."""

from __future__ import annotations

from pathlib import Path


def add_parser(subparsers, help: str):
    from topodata.nn import MODELS

    p = subparsers.add_parser(
        "embed", help=help,
        description=(
            "Train a proxy model on a dataset's training split (or a seeded class-stratified fraction "
            "of it) and write the penultimate-layer features of every training and test sample. "
            "Results are cached per configuration (dataset, model, proxy fraction, epochs, seed, batch "
            "size, lr, optimizer) under $TOPODATA_CACHE/embeddings, so a repeated call only copies them."
        ),
        epilog=(
            "Writes to OUT, atomically (nothing on failure): features.npy (n_train, D) float32, "
            "labels.npy (n_train,) int64, features_test.npy, labels_test.npy, manifest.json (settings, "
            "proxy test accuracy, timings) and dynamics.npz (per-sample training dynamics) where "
            "recorded. Example: topodata embed --dataset fashion-mnist --model smallcnn --out feats/"
        ),
    )
    p.add_argument("--dataset", required=True, metavar="SPEC",
                   help="digits | mnist | fashion-mnist | cifar10 | cifar100 | npz:PATH | imagefolder:PATH")
    p.add_argument("--model", default="smallcnn", choices=sorted(MODELS),
                   help="proxy architecture (default: smallcnn, CPU-friendly; resnet18 wants a GPU)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    p.add_argument("--proxy-fraction", type=float, default=1.0, metavar="F",
                   help="train the proxy on this class-stratified random fraction in (0, 1]; features are "
                        "still extracted for every sample (default: 1.0)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="proxy epochs (default: per model and dataset size, e.g. 4 for fashion-mnist + "
                        "smallcnn; see topodata.embed.DEFAULT_LENGTH)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seeds the proxy subset, initialisation, batch order and augmentation (default: 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto (default) = cuda when available, else cpu; bit-reproducible only on cpu")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="training batch size (default: 256)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"],
                   help="SGD with Nesterov momentum 0.9 (default), or AdamW; one-cycle schedule either way")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.05 SGD, 2e-3 AdamW)")
    p.add_argument("--root", default=None, metavar="DIR",
                   help="where torchvision's dataset files live (default: $TOPODATA_CACHE/datasets/torchvision)")
    p.add_argument("--no-dynamics", action="store_true", help="do not record per-sample training dynamics")
    p.add_argument("--no-cache", action="store_true", help="always train; neither read nor write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from topodata.embed import embed, embed_cached

    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {args.out} exists and is not a directory; choose another path")
    opts = dict(model=args.model, proxy_fraction=args.proxy_fraction, epochs=args.epochs, random_state=args.seed,
                device=args.device, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                root=args.root, record_dynamics=not args.no_dynamics, progress=not args.quiet)
    result = embed(args.dataset, **opts) if args.no_cache else embed_cached(args.dataset, **opts)
    result.save(args.out)
    if not args.quiet:
        m = result.manifest
        acc = m.get("proxy_test_accuracy")
        print(f"features {result.features.shape} from {m['model']} ({m['epochs']} epochs, "
              f"proxy test accuracy {acc:.4f}) -> {args.out}" if acc is not None else
              f"features {result.features.shape} -> {args.out}")
    return 0
