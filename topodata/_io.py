"""Atomic output: write every file under a temporary name, then rename them all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_files", "json_bytes", "user_cache_dir"]


def atomic_write_files(out_dir: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``{name: bytes}`` into ``out_dir`` so that a failure leaves nothing new behind.

    Each file goes to a hidden temporary in the same directory (same filesystem, so
    ``os.replace`` is atomic); renames start only once every temporary is complete.
    ``out_dir`` is created if missing and removed again if this call created it and failed.
    """
    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output directory {out}: {exc.strerror}") from None
    if not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            temps.append((Path(tmp), out / name))
        for tmp, final in temps:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        if created:
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    return [final for _, final in temps]


def json_bytes(obj: Any, *, default: Any = None) -> bytes:
    """The one on-disk JSON form of manifests and metrics: indented, sorted keys, newline-terminated.

    Strict by default (a non-JSON value raises ``TypeError`` before anything is written);
    ``default=str`` stringifies such values where that is wanted (metrics, protocols).
    """
    return (json.dumps(obj, indent=2, sort_keys=True, default=default) + "\n").encode()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def user_cache_dir() -> Path:
    """Cache for converted datasets and embeddings: ``$TOPODATA_CACHE`` or ``~/.cache/topodata``."""
    root = os.environ.get("TOPODATA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "topodata"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
