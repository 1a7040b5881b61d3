"""Screenshot a selection's ``report.html`` in headless Chromium (for the README).

    python scripts/report_screenshot.py runs/fm90 --out docs/report.png
    python scripts/report_screenshot.py --digits --out docs/report.png   # make a digits selection first

Writes the report if the folder has none (or with ``--rewrite``), renders it with Debian's
``chromium`` (``apt-get install -y chromium``) in a fresh profile with networking features off, and
saves a PNG, shrunk with Pillow (palette, optimised) until it is under ``--max-kb``.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--default-background-color=ffffffff",
]


def digits_selection(out: Path) -> Path:
    """A coverage selection of digits at rate 0.9 from precomputed scores (no UMAP, seconds)."""
    import numpy as np

    import topodata
    from topodata.data import load_dataset

    ds = load_dataset("digits")
    x = ds.x_train.reshape(ds.n_train, -1)
    # distance to the class mean: a cheap difficulty score, high for atypical scans
    means = np.stack([x[ds.y_train == c].mean(axis=0) for c in range(ds.n_classes)])
    scores = np.linalg.norm(x - means[ds.y_train], axis=1)
    res = topodata.select(None, ds.y_train, rate=0.9, scores=scores, beta=0.1, dataset="digits", random_state=0)
    topodata.save_selection(res, out)
    return out


def screenshot(html: Path, png: Path, *, width: int, height: int, max_kb: int, browser: str) -> int:
    """Render ``html`` to ``png``; return the PNG's size in bytes."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="topodata-chromium-") as profile:
        raw = Path(profile) / "shot.png"
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/profile", f"--screenshot={raw}",
               f"--window-size={width},{height}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if not raw.is_file():
            sys.exit(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        im = Image.open(raw).convert("RGB")
    png.parent.mkdir(parents=True, exist_ok=True)
    scale = 1.0
    while True:  # palette PNG, then smaller, until it fits
        shot = im if scale == 1.0 else im.resize((int(im.width * scale), int(im.height * scale)), Image.LANCZOS)
        buf = io.BytesIO()
        shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        if buf.tell() <= max_kb * 1024 or scale < 0.3:
            png.write_bytes(buf.getvalue())
            return buf.tell()
        scale *= 0.85


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("selection", nargs="?", type=Path, help="a folder written by `topodata select`")
    ap.add_argument("--digits", action="store_true", help="make a digits selection in runs/report_digits first")
    ap.add_argument("--out", type=Path, default=Path("docs/report.png"))
    ap.add_argument("--rewrite", action="store_true", help="write report.html even if the folder has one")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2000)
    ap.add_argument("--max-kb", type=int, default=480)
    ap.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args(argv)
    if args.digits:
        args.selection = digits_selection(Path("runs/report_digits"))
    if args.selection is None:
        ap.error("give a selection folder or --digits")
    html = args.selection / "report.html"
    if args.rewrite or args.digits or not html.is_file():
        from topodata.report import write_report

        html = write_report(args.selection)
    size = screenshot(html, args.out, width=args.width, height=args.height, max_kb=args.max_kb,
                      browser=args.browser)
    print(f"{args.out}: {size / 1024:.0f} KB from {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
