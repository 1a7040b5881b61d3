"""All-or-nothing output: a set of files in a folder is replaced as one unit.

A folder written by :func:`atomic_write_files` holds its files as symbolic links
``name -> .topodata/current/name``; ``.topodata/current`` is itself a link to one complete version
folder ``.topodata/v-<id>/``. A write builds the next version beside it (new files, plus hard links
of the folder's other managed files) and commits it with one ``rename`` of the ``current`` link,
the only step that changes what a reader sees. So a process killed at any point leaves either the
old set or the new set, never a mix, and a failed write (disk full, permission) removes what it
made. Writers to one folder take an exclusive ``fcntl.flock`` on the folder for the write and,
holding it, delete what killed writers left behind. A single file written into a folder that holds
no managed set is a plain temporary + ``rename``, atomic on its own.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._validation import TopodataInputError

__all__ = ["atomic_write_files", "json_bytes", "load_npy", "user_cache_dir", "io_error_message", "STATE_DIR"]

STATE_DIR = ".topodata"  # inside an output folder: the versions and the ``current`` link
_CURRENT = "current"
_TMP_SUFFIX = re.compile(r"^\.[A-Za-z0-9_]{8}\.tmp$")  # after ".<name>": a mkstemp temporary
_KILL_ENV = "TOPODATA_TEST_KILL_AT"  # tests only: SIGKILL this process at commit step N


def atomic_write_files(out_dir: str | os.PathLike, files: dict[str, bytes]) -> list[Path]:
    """Replace the files ``{name: bytes}`` in ``out_dir`` as one unit.

    Files of the folder not named in ``files`` stay as they are. ``out_dir`` is created if
    missing (and removed again if this call created it and failed).

    Parameters
    ----------
    out_dir : str or path
        The output folder.
    files : dict of str to bytes
        Plain file names (no ``/``) and their contents.

    Returns
    -------
    list of Path
        ``out_dir / name`` for each name, in the order given.

    Raises
    ------
    TopodataInputError
        ``out_dir`` is empty, names something that is not a folder, or a name is invalid or is
        taken by a folder.
    OSError
        The file system refused (permission, disk full, read-only); nothing new is left behind.
    """
    if os.fspath(out_dir) == "":
        raise TopodataInputError("the output folder must be a non-empty path")
    out = Path(out_dir)
    for name in files:
        if not name or name in (".", "..") or "/" in name or "\0" in name or name == STATE_DIR:
            raise TopodataInputError(f"invalid output file name {name!r}")
    created = _make_dir(out)
    try:
        for name in files:
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                raise TopodataInputError(f"cannot write {entry}: a folder of that name is in the way; remove it")
        with _locked(out):
            _clean_temporaries(out, files)
            if len(files) == 1 and not (out / STATE_DIR).exists():
                (name, data), = files.items()
                _write_single(out, name, data)
            else:
                _commit(out, files)
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return [out / name for name in files]


def _make_dir(out: Path) -> Path | None:
    """Create ``out`` (and its parents); return the top-most folder this call created, if any."""
    if out.is_dir():
        return None
    if out.exists() or out.is_symlink():
        raise TopodataInputError(f"output path {out} exists and is not a folder")
    top = out
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise TopodataInputError(f"cannot create output folder {out}: a file is in the way") from None
    except NotADirectoryError:
        raise TopodataInputError(f"cannot create output folder {out}: a parent is a file, not a folder") from None
    return top


def _write_single(out: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    try:
        with _naming(out / name), os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        _step()
        os.replace(tmp, out / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the file is in place; durability of the rename is best effort
        _fsync_dir(out)
    except OSError:
        pass


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Exclusive ``flock`` on the folder ``out``; concurrent writers of one folder wait their turn.

    Where the file system has no ``flock`` on folders, a lock file ``.topodata/lock`` is used.
    """
    import fcntl

    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP):
                raise
            os.close(fd)
            (out / STATE_DIR).mkdir(exist_ok=True)
            fd = os.open(out / STATE_DIR / "lock", os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _clean_temporaries(out: Path, files: dict[str, bytes]) -> None:
    """Delete ``.<name>.XXXXXXXX.tmp`` files of the names being written: left by killed writers.

    Runs under the lock, so no live writer owns them.
    """
    with os.scandir(out) as it:
        for e in it:
            for name in files:
                stem = f".{name}"
                if (e.name.startswith(stem) and _TMP_SUFFIX.match(e.name[len(stem):])
                        and e.is_file(follow_symlinks=False)):
                    _unlink_quiet(Path(e.path))


def _commit(out: Path, files: dict[str, bytes]) -> None:
    state = out / STATE_DIR
    current = state / _CURRENT
    state.mkdir(exist_ok=True)
    _clean_stale(out, state)
    managed = _managed_names(out)
    stage = state / f"v-{secrets.token_hex(6)}"
    made_links: list[Path] = []
    committed = False
    try:
        stage.mkdir()
        for name, data in files.items():  # 1. the new files, complete and on disk
            with _naming(out / name), open(stage / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _step()
        for name in managed - set(files):  # 2. the folder's other managed files, carried over
            _link_or_copy(current / name, stage / name)
        _fsync_dir(stage)
        for name in files:  # 3. a plain file of a name in the set becomes a link, same content
            entry = out / name
            if entry.exists() and not entry.is_symlink():
                _adopt(out, name)
                _step()
        link = f"{STATE_DIR}/{_CURRENT}/" + "{}"
        for name in files:  # 4. links for names new to the folder (dangling until the commit)
            entry = out / name
            if not entry.is_symlink():
                os.symlink(link.format(name), entry)
                made_links.append(entry)
                _step()
            elif os.readlink(entry) != link.format(name):
                _replace_link(entry, link.format(name))
                _step()
        _fsync_dir(out)
        replaced = os.readlink(current) if current.is_symlink() else None
        _replace_link(current, stage.name)  # 5. the commit: one rename
        committed = True
        _step()
    finally:
        if not committed:
            shutil.rmtree(stage, ignore_errors=True)
            for entry in made_links:
                _unlink_quiet(entry)
    try:  # after the commit nothing may fail: the new set is in place
        _fsync_dir(state)
    except OSError:
        pass
    if replaced:
        shutil.rmtree(state / replaced, ignore_errors=True)  # 6. the replaced version


def _adopt(out: Path, name: str) -> None:
    """Turn the plain file ``out/name`` into a managed link without changing what it reads as.

    The file is hard-linked into the current version (made if there is none yet; a file added to
    a version changes nothing visible), then the link replaces it.
    """
    state = out / STATE_DIR
    current = state / _CURRENT
    if not current.is_symlink():
        first = state / f"v-{secrets.token_hex(6)}"
        first.mkdir()
        _replace_link(current, first.name)
    target = current / name
    _unlink_quiet(target)
    _link_or_copy(out / name, target)
    _replace_link(out / name, f"{STATE_DIR}/{_CURRENT}/{name}")


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Give an ``OSError`` raised by a write (disk full, file-size limit) the file it was for."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def _managed_names(out: Path) -> set[str]:
    """Names in ``out`` that are links into the current version and resolve."""
    names = set()
    with os.scandir(out) as it:
        for e in it:
            if e.is_symlink() and os.readlink(e.path) == f"{STATE_DIR}/{_CURRENT}/{e.name}" and os.path.exists(e.path):
                names.add(e.name)
    return names


def _clean_stale(out: Path, state: Path) -> None:
    """Delete what killed writers left: unused versions and half-made links.

    Runs under the lock, so nothing found here belongs to a live writer.
    """
    current = state / _CURRENT
    live = os.readlink(current) if current.is_symlink() else None
    with os.scandir(state) as it:
        for e in it:
            if e.name.startswith("v-") and e.name != live:
                shutil.rmtree(e.path, ignore_errors=True)
            elif e.name.startswith(".link-"):
                _unlink_quiet(Path(e.path))
    with os.scandir(out) as it:
        for e in it:
            if e.is_symlink():
                if os.readlink(e.path) == f"{STATE_DIR}/{_CURRENT}/{e.name}" and not os.path.exists(e.path):
                    _unlink_quiet(Path(e.path))  # a link made for a commit that never happened
                elif e.name.startswith(".link-"):
                    _unlink_quiet(Path(e.path))


def _replace_link(path: Path, target: str) -> None:
    """Point the symbolic link ``path`` at ``target`` with one atomic rename."""
    tmp = path.parent / f".link-{secrets.token_hex(6)}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst, follow_symlinks=True)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copy2(src, dst)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_step_count = 0


def _step() -> None:
    """Tests only: with ``$TOPODATA_TEST_KILL_AT = N`` the process SIGKILLs itself at step N."""
    global _step_count
    at = os.environ.get(_KILL_ENV)
    if at is None:
        return
    if _step_count == int(at):
        os.kill(os.getpid(), signal.SIGKILL)
    _step_count += 1


def io_error_message(exc: OSError) -> str:
    """One line for a file-system error: what failed, on which path, and the system's reason."""
    reason = exc.strerror or type(exc).__name__
    hints = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENAMETOOLONG: "the file name is too long",
        errno.EFBIG: "the file is larger than the file-size limit allows",
        errno.ENOTDIR: "a parent of the path is a file, not a folder",
        errno.ENOENT: "no such file or folder",
        errno.EISDIR: "it is a folder, not a file",
    }
    reason = hints.get(exc.errno, reason)
    where = exc.filename
    if where is not None:
        where = os.fsdecode(where)
        return f"{where}: {reason}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else reason
    return text


def load_npy(path: str | os.PathLike, what: str) -> Any:
    """One ``.npy`` array from a user's file, or a one-line :class:`TopodataInputError` naming ``what``.

    Never unpickles (``allow_pickle=False``); a ``.npz`` archive or a file that is not NumPy's
    format is named as such instead of numpy's own message (which speaks of pickled data).
    """
    path = Path(path)
    if not path.is_file():
        raise TopodataInputError(f"{what} file not found: {path}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if magic == b"\x93NUMPY":
                return np.load(fh, allow_pickle=False)
    except OSError as exc:
        raise TopodataInputError(f"cannot read {what} file {io_error_message(exc)}") from None
    except (ValueError, EOFError) as exc:  # object arrays, truncated files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TopodataInputError(f"cannot read {what} file {path}: {first}") from None
    if magic.startswith(b"PK"):
        raise TopodataInputError(f"{what} file {path} is a .npz archive; save one array with numpy.save "
                                 "(or pass the archive as --dataset npz:PATH)")
    raise TopodataInputError(f"{what} file {path} is not a .npy file (write it with numpy.save)")


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
    """Cache for converted datasets and embeddings: ``$TOPODATA_CACHE`` or ``~/.cache/topodata``.

    Raises
    ------
    TopodataInputError
        The folder cannot be created or is not a folder (one line naming ``TOPODATA_CACHE``).
    """
    env = os.environ.get("TOPODATA_CACHE")
    root = env or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "topodata")
    path = Path(root)
    what = f"TOPODATA_CACHE={root}" if env else f"cache folder {root}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise TopodataInputError(f"{what} is not a folder; point TOPODATA_CACHE at a writable folder") from None
    except OSError as exc:
        raise TopodataInputError(
            f"{what} cannot be created ({io_error_message(exc)}); point TOPODATA_CACHE at a writable folder"
        ) from None
    if not path.is_dir():
        raise TopodataInputError(f"{what} is not a folder; point TOPODATA_CACHE at a writable folder")
    return path
