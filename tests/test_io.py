"""All-or-nothing outputs (topodata._io): kills at every commit step, failures, cleanup, locking."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from topodata import _io
from topodata._io import STATE_DIR, atomic_write_files, user_cache_dir
from topodata._validation import TopodataInputError

NAMES = ("a.bin", "b.bin", "c.bin", "d.bin")
WRITE = ("import sys; from topodata._io import atomic_write_files as w; "
         "w(sys.argv[1], {n: sys.argv[2].encode() for n in sys.argv[3].split(',')})")


def _visible(out):
    """What a reader sees: name -> bytes (None where the name does not resolve)."""
    got = {}
    for n in NAMES:
        try:
            got[n] = (out / n).read_bytes()
        except FileNotFoundError:
            got[n] = None
    return got


def _killed_write(out, value, step, names=NAMES):
    env = {**os.environ, "TOPODATA_TEST_KILL_AT": str(step)}
    r = subprocess.run([sys.executable, "-c", WRITE, str(out), value, ",".join(names)], env=env,
                       capture_output=True, text=True)
    assert r.returncode in (0, -9), r.stderr
    return r.returncode


@pytest.mark.parametrize("start", ["managed", "plain files", "missing"])
def test_sigkill_at_every_step_leaves_old_or_new_set(tmp_path, start):
    """Killed at each step of the commit, a reader sees the complete old set or the complete new one."""
    old = {"managed": b"old", "plain files": b"old", "missing": None}[start]
    for step in range(30):
        out = tmp_path / f"s{step}"
        if start == "managed":
            atomic_write_files(out, {n: b"old" for n in NAMES})
        elif start == "plain files":  # a folder written by the previous, file-by-file writer
            out.mkdir()
            for n in NAMES:
                (out / n).write_bytes(b"old")
            (out / ".a.bin.abcd1234.tmp").write_bytes(b"stray")
        rc = _killed_write(out, "new", step)
        seen = set(_visible(out).values())
        assert seen in ({old}, {b"new"}), (step, seen)
        if rc == 0:
            assert seen == {b"new"}
            break
        # the next run cleans what the killed one left and commits normally
        atomic_write_files(out, {n: b"next" for n in NAMES})
        assert set(_visible(out).values()) == {b"next"}
        state = sorted(os.listdir(out / STATE_DIR))
        assert len(state) == 2 and state[0] == "current" and state[1].startswith("v-"), state
        assert sorted(os.listdir(out)) == sorted([STATE_DIR, *NAMES])  # no stray temporaries
    else:
        pytest.fail("the write never completed")
    assert step >= 5  # every step was interrupted at least once


def test_other_files_are_kept_and_carried_over(tmp_path):
    out = tmp_path / "o"
    atomic_write_files(out, {"a": b"1", "b": b"1"})
    (out / "user.txt").write_text("mine")
    (out / "sub").mkdir()
    atomic_write_files(out, {"b": b"2", "c": b"2"})
    assert [(out / n).read_bytes() for n in "abc"] == [b"1", b"2", b"2"]
    assert (out / "user.txt").read_text() == "mine" and (out / "sub").is_dir()
    assert len([p for p in (out / STATE_DIR).iterdir() if p.name.startswith("v-")]) == 1


def test_single_file_into_plain_folder_is_a_plain_rename(tmp_path):
    atomic_write_files(tmp_path, {"x.npz": b"data"})
    assert sorted(os.listdir(tmp_path)) == ["x.npz"] and not (tmp_path / "x.npz").is_symlink()


def test_failed_write_removes_its_temporaries(tmp_path, monkeypatch):
    out = tmp_path / "o"
    atomic_write_files(out, {"a": b"old", "b": b"old"})
    before = sorted(os.listdir(out / STATE_DIR))
    real_open = open

    def full_disk(path, mode="r", *a, **k):
        if "w" in mode and STATE_DIR in str(path) and str(path).endswith("/b"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError) as exc:
        atomic_write_files(out, {"a": b"new", "b": b"new", "c": b"new"})
    monkeypatch.undo()
    assert exc.value.errno == errno.ENOSPC
    assert "the disk is full" in _io.io_error_message(exc.value)
    assert sorted(os.listdir(out / STATE_DIR)) == before
    assert sorted(os.listdir(out)) == [STATE_DIR, "a", "b"]  # no dangling link for c
    assert (out / "a").read_bytes() == b"old"


def test_failure_in_a_new_folder_removes_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "_fsync_dir", lambda path: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        atomic_write_files(tmp_path / "new" / "deeper", {"a": b"1", "b": b"2"})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", ["empty", "file", "parent file", "dir in the way", "bad name"])
def test_refused_paths(tmp_path, case):
    (tmp_path / "f").write_text("x")
    out, files = tmp_path / "o", {"a": b"1", "b": b"1"}
    if case == "empty":
        out = ""
    elif case == "file":
        out = tmp_path / "f"
    elif case == "parent file":
        out = tmp_path / "f" / "o"
    elif case == "dir in the way":
        (out / "b").mkdir(parents=True)
    else:
        files = {"../a": b"1"}
    with pytest.raises(TopodataInputError):
        atomic_write_files(out, files)
    expected = {"dir in the way": ["f", "o"]}.get(case, ["f"])
    assert sorted(os.listdir(tmp_path)) == expected


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_folder_is_an_oserror(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError):
            atomic_write_files(ro / "o", {"a": b"1", "b": b"1"})
    finally:
        ro.chmod(0o700)


def test_concurrent_writers_are_serialised(tmp_path):
    """Threads writing different sets into one folder: every observed state is one writer's set."""
    out = tmp_path / "o"
    atomic_write_files(out, {n: b"0" for n in NAMES})
    errors = []

    def writer(tag):
        try:
            for i in range(15):
                atomic_write_files(out, {n: f"{tag}{i}".encode() for n in NAMES})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "xyz"]
    for t in threads:
        t.start()
    seen = []
    while any(t.is_alive() for t in threads):
        seen.append(set(_visible(out).values()))
    for t in threads:
        t.join()
    assert not errors
    final = set(_visible(out).values())
    assert len(final) == 1 and final.pop() in {b"x14", b"y14", b"z14"}
    assert len([p for p in (out / STATE_DIR).iterdir() if p.name.startswith("v-")]) == 1


def test_user_cache_dir_errors_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "f"))
    with pytest.raises(TopodataInputError, match="TOPODATA_CACHE=.* is not a folder"):
        user_cache_dir()
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "f" / "sub"))
    with pytest.raises(TopodataInputError, match="TOPODATA_CACHE"):
        user_cache_dir()
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "ok"))
    assert user_cache_dir() == tmp_path / "ok" and (tmp_path / "ok").is_dir()


# ----------------------------------------------------------------------------- select, killed
def _select(out, seed, rate, fx, fy, step=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if step is not None:
        env["TOPODATA_TEST_KILL_AT"] = str(step)
    return subprocess.run(
        [sys.executable, "-m", "topodata", "select", "--embeddings", str(fx), "--labels", str(fy),
         "--rate", str(rate), "--method", "moderate", "--seed", str(seed), "--out", str(out), "-q"],
        env=env, capture_output=True, text=True)


def _consistent(out):
    m = json.loads((out / "manifest.json").read_text())
    idx = np.load(out / "indices.npy")
    txt = [int(v) for v in (out / "indices.txt").read_text().split()]
    assert m["n_kept"] == idx.size == len(txt) and idx.tolist() == txt
    assert np.load(out / "scores.npy").shape == (m["n_total"],)
    return m["rate"], idx.tolist()


def test_select_killed_at_each_step_over_an_existing_result(tmp_path):
    import shutil

    from topodata.select import save_selection, select

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 4)), np.repeat([0, 1, 2], 30)
    fx, fy = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(fx, x)
    np.save(fy, y)
    base = tmp_path / "base"
    save_selection(select(x, y, rate=0.5, method="moderate", random_state=0), base)
    old = _consistent(base)
    new = (0.9, select(x, y, rate=0.9, method="moderate", random_state=1).indices.tolist())
    assert old != new
    for step in range(12):
        out = tmp_path / f"run{step}"
        shutil.copytree(base, out, symlinks=True)
        r = _select(out, 1, 0.9, fx, fy, step=step)
        assert r.returncode in (0, -9), r.stderr
        assert _consistent(out) in (old, new)
        if r.returncode == 0:
            assert _consistent(out) == new
            break
    else:
        pytest.fail("select never completed")
    assert step >= 4  # killed after each of the 4 files and at the commit


def test_select_over_the_file_size_limit_is_one_line_and_changes_nothing(tmp_path):
    """A write that fails half-way (here EFBIG, as for a full disk) leaves the previous result as it was."""
    import resource
    import signal

    from topodata.select import save_selection, select

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 4)), np.repeat([0, 1, 2], 30)
    fx, fy = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(fx, x)
    np.save(fy, y)
    out = tmp_path / "out"
    save_selection(select(x, y, rate=0.5, method="moderate", random_state=0), out)
    before = {str(p.relative_to(out)): (p.read_bytes() if p.is_file() else None) for p in sorted(out.rglob("*"))}

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "topodata", "select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9",
         "--method", "moderate", "--seed", "1", "--out", str(out), "-q"],
        env=env, capture_output=True, text=True, preexec_fn=limit)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "file-size limit" in lines[0], r.stderr
    after = {str(p.relative_to(out)): (p.read_bytes() if p.is_file() else None) for p in sorted(out.rglob("*"))}
    assert after == before


@pytest.mark.parametrize("argv", [
    ["embed", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--quiet"],
    ["select", "--dataset", "digits", "--rate", "0.5", "--method", "moderate", "--model", "mlp", "--quiet"],
])
def test_cli_with_an_unusable_cache_is_one_line(tmp_path, monkeypatch, capsys, argv):
    from topodata.cli import main

    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TOPODATA_CACHE" in err[0] and "not a folder" in err[0], err
    assert not out.exists()
