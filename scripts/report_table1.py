"""Report: the topologically critical compression ratios of Balwani & Krzyston (2022), Table 1.

Prints every entry of the paper's Table 1 (conv, dense and whole-network eta_tau of VGG-11 and
ResNet-20 on CIFAR-10/100, VGG-11 and ResNet-18 on 64x64 Tiny-ImageNet) next to
:func:`topodata.weights.critical_compression` under its default reading (one channel pair's graph
per conv layer, group = sum |W| / sum |MST|) and under the unrolled reading, with the relative
difference. Then it searches a small grid of readings, spatial sizes x aggregation over layers:

- spatial: ``output`` (default; m = (H'+2p)^2 padded, n = H'^2 at the layer's output resolution),
  ``input`` (m = (H+2p)^2 at its input resolution, n = H'^2), ``stem`` (every conv at the
  network's input size, as if nothing downsampled), ``unpadded`` (m = n = H'^2);
- aggregation: ``sum`` (sum |W| / sum |MST|, one pair graph per layer), ``mean`` (mean of the
  layers' eta), ``first`` (first conv layer alone; conv group only), ``pairs`` (sum weighted by the
  C_in * C_out channel pairs of each layer);

and states, entry by entry, which readings reproduce the paper's value to the digits it prints,
or the nearest value when none does. 1x1 convolutions are left out of every grid reading.

Usage::

    python scripts/report_table1.py                 # prints the tables
    python scripts/report_table1.py --out runs/table1   # + table1.md, results.json, own source
"""

from __future__ import annotations

import argparse
import itertools
import json
from decimal import Decimal
from pathlib import Path

import numpy as np

from topodata.weights import critical_compression
from topodata.weights.compression import LayerShape

SETTINGS = [  # (label, architecture, input shape, classes, paper's conv, dense, network)
    ("VGG-11 CIFAR-10", "vgg11", (3, 32, 32), 10, "4.2295", "9.8273", "4.3914"),
    ("VGG-11 CIFAR-100", "vgg11", (3, 32, 32), 100, "4.2295", "83.7971", "6.9239"),
    ("VGG-11 Tiny-ImageNet", "vgg11", (3, 64, 64), 200, "4.2672", "528.3911", "183.3624"),
    ("ResNet-20 CIFAR-10", "resnet20", (3, 32, 32), 10, "4.1508", "8.7671", "4.1679"),
    ("ResNet-20 CIFAR-100", "resnet20", (3, 32, 32), 100, "4.1508", "39.2638", "4.4389"),
    ("ResNet-18 Tiny-ImageNet", "resnet18", (3, 64, 64), 200, "4.3142", "144.0225", "6.13182"),
]
GROUPS = ("conv", "dense", "network")
SPATIAL = ("output", "input", "stem", "unpadded")
AGGREGATIONS = ("sum", "mean", "first", "pairs")


def reproduces(value: float, paper: str) -> bool:
    """``value`` rounds to the paper's number at the digits the paper prints."""
    digits = -Decimal(paper).as_tuple().exponent
    return round(value, digits) == float(paper)


def pair_graph(s: LayerShape, spatial: str, side: int) -> tuple[int, int]:
    """``(|W|, |MST|)`` of one channel pair's graph of conv layer ``s`` under ``spatial``."""
    k = int(np.prod(s.kernel))
    p = s.padding[0] if s.padding else 0
    h_in, h_out = s.in_size[0], s.out_size[0]
    if spatial == "stem":
        h_in = h_out = side
    m = {"output": (h_out + 2 * p) ** 2, "input": (h_in + 2 * p) ** 2, "stem": (h_in + 2 * p) ** 2,
         "unpadded": h_out ** 2}[spatial]
    n = h_out ** 2
    return n * k, m + n - 1


def grid_value(layers: list[LayerShape], group: str, spatial: str, agg: str, side: int) -> float | None:
    """One group's eta under one grid reading (None where the aggregation does not apply)."""
    rows = []  # (|W|, |MST|, channel pairs) per counted layer
    for s in layers:
        if s.kind == "conv" and group in ("conv", "network") and not s.pointwise:
            rows.append((*pair_graph(s, spatial, side), s.in_channels * s.out_channels))
        elif s.kind == "dense" and group in ("dense", "network"):
            rows.append((s.n_edges, s.n_tree, 1))
    if not rows or (agg == "first" and group != "conv"):
        return None
    e, t, c = (np.array(x, dtype=float) for x in zip(*rows))
    if agg == "sum":
        return float(e.sum() / t.sum())
    if agg == "mean":
        return float(np.mean(e / t))
    if agg == "first":
        return float(e[0] / t[0])
    return float((e * c).sum() / (t * c).sum())


def build() -> list[dict]:
    rows = []
    for label, arch, shape, classes, *paper in SETTINGS:
        default = critical_compression(arch, input_shape=shape, n_classes=classes)
        unrolled = critical_compression(arch, input_shape=shape, n_classes=classes, reading="unrolled")
        for group, ref in zip(GROUPS, paper):
            grid = {}
            for spatial, agg in itertools.product(SPATIAL, AGGREGATIONS):
                v = grid_value(default.layers, group, spatial, agg, shape[1])
                if v is not None:
                    grid[f"{spatial}/{agg}"] = v
            ours = default.groups()[group]
            hits = sorted(k for k, v in grid.items() if reproduces(v, ref))
            nearest = min(grid, key=lambda k: abs(grid[k] - float(ref)))
            rows.append({"setting": label, "group": group, "paper": float(ref), "paper_text": ref,
                         "default": ours, "rel_diff": ours / float(ref) - 1.0,
                         "reproduced": reproduces(ours, ref), "unrolled": unrolled.groups()[group],
                         "grid_hits": hits, "nearest": nearest, "nearest_value": grid[nearest]})
    return rows


def render(rows: list[dict]) -> list[str]:
    md = ["| setting | group | paper | topodata (paper reading) | rel. diff | reproduced | unrolled | "
          "grid readings that reproduce it (spatial/aggregation) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hits = ", ".join(r["grid_hits"]) if r["grid_hits"] else (
            f"none; nearest {r['nearest']} = {r['nearest_value']:.5f} "
            f"({r['nearest_value'] / r['paper'] - 1:+.1e})")
        md.append(f"| {r['setting']} | {r['group']} | {r['paper_text']} | {r['default']:.5f} | "
                  f"{r['rel_diff']:+.1e} | {'yes' if r['reproduced'] else 'no'} | {r['unrolled']:.2f} | {hits} |")
    n_ok = sum(r["reproduced"] for r in rows)
    md += ["", f"The default reading (spatial `output`, aggregation `sum`) reproduces {n_ok} of the {len(rows)} "
               "entries to the digits the paper prints."]
    missed = [r for r in rows if not r["reproduced"]]
    if missed:
        md.append("Not reproduced by it: " + "; ".join(
            f"{r['setting']} {r['group']} ({r['paper_text']} vs {r['default']:.5f}"
            + (f"; reproduced by {', '.join(r['grid_hits'])}" if r["grid_hits"] else
               f"; no grid reading, nearest {r['nearest']} {r['nearest_value']:.5f}") + ")" for r in missed) + ".")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for table1.md, results.json and the source")
    args = parser.parse_args(argv)
    rows = build()
    text = "\n".join(render(rows))
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table1.md").write_text(text + "\n")
        (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "report_table1.py").write_text(Path(__file__).read_text())
        print(f"wrote {args.out}/table1.md, results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
