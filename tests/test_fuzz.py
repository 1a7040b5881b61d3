"""Seeded fuzzing of the command line and the API against the input contract.

Every generated case must end in one of two ways: exit 0 with a complete, consistent output, or
exit 2 with exactly one line on stderr and the output folder as it was. Never a traceback, never a
silently accepted invalid value. An oracle computed independently of the library says, for each
case, whether it must fail, must succeed, or may do either (a capped or refused edge case).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import traceback
from pathlib import Path

import numpy as np
import pytest

from topodata._validation import TopodataInputError
from topodata.cli import main

SEED = 20261202
N_CLI = 360
N_API = 200
CHEAP_METHODS = ("random", "moderate", "kcenter", "herding")
FAIL, PASS, EITHER = "fail", "pass", "either"
FEATURES_IGNORED_BY_RANDOM = {"x_nan", "x_inf", "x_complex", "x_1d", "x_0col", "x_3d", "x_huge", "x_str"}


# ----------------------------------------------------------------------------- fixtures on disk
def _inputs(root: Path) -> dict[str, tuple[Path, str]]:
    """Feature and label files, each with what the oracle knows about it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = np.repeat([0, 1, 2], 20)
    files: dict[str, tuple[object, str]] = {
        "x": (x, PASS), "x_f32": (x.astype(np.float32), PASS), "x_int": (rng.integers(0, 9, (60, 3)), PASS),
        "x_nan": (np.where(np.arange(180).reshape(60, 3) == 7, np.nan, x), FAIL),
        "x_inf": (np.where(np.arange(180).reshape(60, 3) == 7, np.inf, x), FAIL),
        "x_complex": (x + 1j, FAIL), "x_0d": (np.float64(3.0), FAIL), "x_1d": (x[:, 0], FAIL),
        "x_0col": (np.empty((60, 0)), FAIL), "x_3d": (x.reshape(60, 3, 1), FAIL),
        "x_huge": (x * 1e300, FAIL), "x_short": (x[:50], FAIL), "x_str": (np.array(["a"] * 60), FAIL),
        "y": (y, PASS), "y_float_int": (y.astype(float), PASS), "y_2col": (y[:, None], PASS),
        "y_frac": (y + 0.5, FAIL), "y_neg": (y - 1, PASS), "y_2d": (np.stack([y, y], 1), FAIL),
        "y_short": (y[:40], FAIL), "y_nan": (np.where(np.arange(60) == 3, np.nan, y), FAIL),
        "y_str": (np.array(["a"] * 60), PASS), "y_names": (np.array(["b", "a", "c"])[y], PASS),
        "y_names_short": (np.array(["b", "a", "c"])[y[:40]], FAIL),
        "y_small_class": (np.r_[np.zeros(58, int), 1, 1], EITHER),
    }
    out: dict[str, tuple[Path, str]] = {}
    for name, (arr, verdict) in files.items():
        path = root / f"{name}.npy"
        np.save(path, arr)
        out[name] = (path, verdict)
    good = (root / "x.npy").read_bytes()
    (root / "x_trunc.npy").write_bytes(good[: len(good) // 2])
    (root / "x_text.npy").write_text("not an array\n")
    np.save(root / "x_object.npy", np.array([{"a": 1}] * 60, dtype=object), allow_pickle=True)
    out["x_trunc"] = (root / "x_trunc.npy", FAIL)
    out["x_text"] = (root / "x_text.npy", FAIL)
    out["x_object"] = (root / "x_object.npy", FAIL)
    out["x_missing"] = (root / "nope.npy", FAIL)
    out["x_dir"] = (root, FAIL)
    return out


def _snapshot(path: Path) -> dict[str, str] | None:
    """Every entry under ``path`` (hidden state included) with a hash of what it reads as."""
    try:
        if not path.exists() and not path.is_symlink():
            return None
    except OSError:  # e.g. a name too long to look up
        return None
    if not path.is_dir():
        return {"": "file"}
    snap = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            snap[rel] = "->" + os.readlink(p)
        elif p.is_file():
            snap[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
        else:
            snap[rel] = "dir"
    return snap


def _run(argv: list[str]) -> tuple[int, str, str | None]:
    """``main(argv)`` in-process: (exit code, stderr, traceback of an escaped exception or None)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - the contract says this never happens
            return -1, err.getvalue(), traceback.format_exc()
    return int(rc), err.getvalue(), None


# ----------------------------------------------------------------------------- the select oracle
def _kept(n: int, rate: float) -> int:
    return n - math.floor(rate * n + 1e-9)


def _gen_select(r: random.Random, files, root: Path, case: int) -> tuple[list[str], str, dict]:
    verdicts = []
    info: dict = {}
    clean = r.random() < 0.45  # half the cases draw only valid values, so both exits are exercised

    def pick(valid, invalid):
        return r.choice(valid if clean else valid + invalid)

    xname = pick(["x", "x", "x_f32", "x_int"], [k for k in files if k.startswith("x")])
    yname = pick(["y", "y", "y_float_int", "y_2col"], [k for k in files if k.startswith("y")])
    verdicts += [files[xname][1], files[yname][1]]
    argv = ["select", "--embeddings", str(files[xname][0]), "--labels", str(files[yname][0])]
    choice = r.random()
    if clean:
        pass
    elif choice < 0.04:  # a dataset and labels together
        argv = ["select", "--dataset", "digits", "--labels", str(files["y"][0])]
        verdicts.append(FAIL)
    elif choice < 0.07:  # features without labels
        argv = argv[:3]
        verdicts.append(FAIL)
    rate_text = pick(["0.5", "0.9", "0.1", "0.75", "0.95", "1e-300", "0.2"],
                     ["0.99", "0.999999999999", "0", "1", "1.5", "-0.2", "nan", "inf", "-inf", "abc", "", "0.98333"])
    argv += ["--rate", rate_text]
    try:
        rate = float(rate_text)
    except ValueError:
        rate = float("nan")
    if not (math.isfinite(rate) and 0 < rate < 1):
        verdicts.append(FAIL)
    elif files[xname][1] == PASS and files[yname][1] == PASS:
        if _kept(60, rate) < 1:
            verdicts.append(FAIL)
        elif _kept(60, rate) < 3:  # some class may get no sample: refused or kept, never silent loss
            verdicts.append(EITHER)
        info["n_kept"] = _kept(60, rate)
    method = r.choice(CHEAP_METHODS + ("topoprune-bad",) if r.random() < 0.05 and not clean else CHEAP_METHODS)
    if method == "topoprune-bad":  # a NaN option of the main method must fail before any compute
        argv += ["--method", "topoprune", r.choice(["--label-weight", "--min-dist", "--h1-fraction",
                                                    "--step-size", "--power"]), r.choice(["nan", "inf", "-inf"])]
        verdicts.append(FAIL)
    else:
        argv += ["--method", method]
        if method == "random" and files[xname][1] == FAIL and xname in FEATURES_IGNORED_BY_RANDOM:
            verdicts[0] = EITHER  # random reads only the features' length
    if r.random() < 0.5:
        seed = pick(["0", "1", "7", str(2**31), "00"], ["-1", "x", "3.5"])
        argv += ["--seed", seed]
        verdicts.append(PASS if seed.isdigit() else FAIL)
    if r.random() < 0.4:
        beta = pick(["auto", "0", "0.1", "0.5", "0.99", "1e-9"], ["1", "-0.1", "nan", "inf", "abc"])
        argv += ["--beta", beta]
        ok = beta == "auto" or (beta not in ("nan", "inf", "abc") and 0 <= float(beta) < 1)
        verdicts.append(PASS if ok else FAIL)
    if r.random() < 0.4:
        strata = pick(["1", "5", "50"], ["0", "-3", "1.5", "x", "1000"])
        argv += ["--n-strata", strata]
        verdicts.append({"1000": EITHER}.get(strata, PASS if strata.isdigit() and int(strata) >= 1 else FAIL))
    if r.random() < 0.3:
        argv += ["--strategy", pick(["coverage", "hard", "easy", "random"], ["bogus"])]
        verdicts.append(FAIL if argv[-1] == "bogus" else PASS)
    if r.random() < 0.2:
        argv += ["--sampler", pick(["key", "draw"], ["other"])]
        verdicts.append(FAIL if argv[-1] == "other" else PASS)
    if r.random() < 0.2:
        argv += ["--class-balance", pick(["proportional", "balanced", "boundary"], ["equal"])]
        verdicts.append(FAIL if argv[-1] == "equal" else PASS)
    kind = pick(["new"] * 6 + ["existing"] * 3 + ["nested new"], ["empty", "file", "under file", "long"])
    out = root / "outs" / f"o{case}"
    if kind == "existing":
        out = root / "existing"
    elif kind == "nested new":
        out = out / "a" / "b"
    elif kind == "empty":
        out, _ = "", verdicts.append(FAIL)
    elif kind == "file":
        out, _ = root / "x.npy", verdicts.append(FAIL)
    elif kind == "under file":
        out, _ = root / "x.npy" / "o", verdicts.append(FAIL)
    elif kind == "long":
        out, _ = root / ("n" * 300), verdicts.append(FAIL)
    argv += ["--out", str(out), "-q"]
    if r.random() < 0.03 and not clean:
        argv.insert(1, "--no-such-option")
        verdicts.append(FAIL)
    verdict = FAIL if FAIL in verdicts else EITHER if EITHER in verdicts else PASS
    info["out"] = Path(out) if out != "" else None
    return argv, verdict, info


def _check_selection(out: Path, info: dict) -> None:
    m = json.loads((out / "manifest.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in manifest"))
    idx = np.load(out / "indices.npy")
    txt = [int(v) for v in (out / "indices.txt").read_text().split()]
    scores = np.load(out / "scores.npy")
    assert idx.dtype == np.int64 and idx.tolist() == txt and np.all(np.diff(idx) > 0)
    assert m["n_kept"] == idx.size and scores.shape == (m["n_total"],)
    assert idx.size and idx.min() >= 0 and idx.max() < m["n_total"]
    if "n_kept" in info:
        assert idx.size == info["n_kept"]


def test_fuzz_cli_select(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path that silently meant the working folder writes here, not in the repo
    r = random.Random(SEED)
    files = _inputs(tmp_path)
    assert main(["select", "--embeddings", str(files["x"][0]), "--labels", str(files["y"][0]), "--rate", "0.5",
                 "--method", "random", "--out", str(tmp_path / "existing"), "-q"]) == 0
    problems: list[str] = []
    outcomes = {0: 0, 2: 0}
    for case in range(N_CLI):
        argv, verdict, info = _gen_select(r, files, tmp_path, case)
        out = info["out"]
        before = _snapshot(out) if out is not None else None
        cwd_before = sorted(os.listdir(tmp_path))
        rc, err, tb = _run(argv)
        tag = f"case {case}: topodata {' '.join(argv)}"
        if tb is not None:
            problems.append(f"{tag}: traceback\n{tb}")
            continue
        outcomes[rc] = outcomes.get(rc, 0) + 1
        if rc == 2:
            # one error line; one-line warnings about ignored options may precede it
            lines = [line for line in err.splitlines() if line.strip() and ": warning: " not in line]
            if len(lines) != 1:
                problems.append(f"{tag}: stderr has {len(lines)} error lines: {err!r}")
            if out is not None and _snapshot(out) != before:
                problems.append(f"{tag}: exit 2 but {out} changed")
            if sorted(os.listdir(tmp_path)) != cwd_before:
                problems.append(f"{tag}: exit 2 but the fixture folder changed")
            if verdict == PASS:
                problems.append(f"{tag}: valid input refused: {err.strip()}")
        elif rc == 0:
            if verdict == FAIL:
                problems.append(f"{tag}: invalid input silently accepted")
            else:
                try:
                    _check_selection(out, info)
                except (AssertionError, OSError, ValueError) as exc:
                    problems.append(f"{tag}: inconsistent output: {exc}")
        else:
            problems.append(f"{tag}: exit {rc}: {err!r}")
    assert not problems, f"{len(problems)} of {N_CLI} cases broke the contract:\n" + "\n".join(problems[:15])
    assert outcomes[0] > 60 and outcomes[2] > 60, outcomes  # both paths exercised


# ----------------------------------------------------------------------------- other commands
BAD_OTHER = [
    ["train", "--dataset", "digits", "--indices", "{missing}", "--model", "mlp", "--out", "{out}"],
    ["train", "--dataset", "digits", "--indices", "{sel}", "--model", "mlp", "--lr", "nan", "--out", "{out}"],
    ["train", "--dataset", "digits", "--indices", "{sel}", "--model", "mlp", "--lr", "inf", "--out", "{out}"],
    ["train", "--dataset", "digits", "--indices", "{sel}", "--model", "mlp", "--out", ""],
    ["embed", "--dataset", "digits", "--model", "mlp", "--proxy-fraction", "nan", "--out", "{out}"],
    ["embed", "--dataset", "digits", "--model", "mlp", "--lr", "-inf", "--out", "{out}"],
    ["embed", "--dataset", "npz:{missing}", "--model", "mlp", "--out", "{out}"],
    ["embed", "--dataset", "npz:{trunc}", "--model", "mlp", "--out", "{out}"],
    ["np", "--checkpoint", "{missing}", "--model", "lenet300100"],
    ["np", "--checkpoint", "{trunc}", "--model", "lenet300100"],
    ["timp", "--dataset", "digits", "--model", "lenet300100", "--target-sparsity", "nan", "--out", "{out}"],
    ["timp", "--dataset", "digits", "--model", "lenet300100", "--target-sparsity", "inf", "--out", "{out}"],
    ["bench", "{missing}", "--out", "{out}"],
    ["bench", "{trunc}", "--out", "{out}"],
    ["select", "--dataset", "npz:{trunc}", "--method", "random", "--rate", "0.5", "--out", "{out}"],
    ["select", "--dataset", "npz:{missing}", "--method", "random", "--rate", "0.5", "--out", "{out}"],
]


def test_fuzz_other_commands_refuse_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path that silently meant the working folder writes here, not in the repo
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(40, 4)), y=np.repeat([0, 1], 20))
    (tmp_path / "t.npz").write_bytes(buf.getvalue()[:100])
    np.save(tmp_path / "sel.npy", np.arange(10))
    fixture = sorted(os.listdir(tmp_path))
    problems = []
    for i, template in enumerate(BAD_OTHER):
        out = tmp_path / f"o{i}"
        argv = [a.format(missing=tmp_path / "missing.npz", trunc=tmp_path / "t.npz", sel=tmp_path / "sel.npy",
                         out=out) for a in template]
        rc, err, tb = _run(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        if tb is not None or rc != 2 or len(lines) != 1 or sorted(os.listdir(tmp_path)) != fixture:
            problems.append(f"topodata {' '.join(argv)}: exit {rc}, stderr {err!r}, wrote {out.exists()}\n{tb or ''}")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- the API
def _api_case(r: random.Random, x, y):
    """(kwargs of select, verdict)."""
    verdicts = []
    rate = r.choice([0.5, 0.9, np.float32(0.8), np.float64(0.25), 0, 1, -1, float("nan"), float("inf"), True,
                     "0.5", None, 0.999999999999, 1e-12])
    if isinstance(rate, (bool, str)) or rate is None or not (np.isfinite(rate) and 0 < rate < 1):
        verdicts.append(FAIL)
    elif _kept(len(y), float(rate)) < 1:
        verdicts.append(FAIL)
    elif _kept(len(y), float(rate)) < 3:
        verdicts.append(EITHER)
    kw = {"rate": rate, "method": r.choice(CHEAP_METHODS)}
    if r.random() < 0.5:
        seed = r.choice([0, 3, np.int64(3), np.uint8(2), -1, 1.5, "0", True, None, np.random.default_rng(1)])
        kw["random_state"] = seed
        bad = isinstance(seed, (bool, str, float)) or (isinstance(seed, (int, np.integer)) and seed < 0)
        verdicts.append(FAIL if bad else PASS)
    if r.random() < 0.4:
        strata = r.choice([1, 10, np.int64(5), 0, -2, 2.5, "5", True, float("nan")])
        kw["n_strata"] = strata
        ok = isinstance(strata, (int, np.integer)) and not isinstance(strata, bool) and strata >= 1
        verdicts.append(PASS if ok else FAIL)
    if r.random() < 0.4:
        beta = r.choice(["auto", 0.0, 0.2, np.float32(0.1), 1.0, -0.5, float("nan"), float("inf"), "high", None])
        kw["beta"] = beta
        ok = beta == "auto" or (isinstance(beta, (float, np.floating)) and np.isfinite(beta) and 0 <= beta < 1)
        verdicts.append(PASS if ok else FAIL)
    if r.random() < 0.15:
        kw["method_params"] = r.choice([{"no_such_option": 1}, {"k": float("nan")}])
        verdicts.append(FAIL)
    feats = r.choice(["ok"] * 6 + ["nan", "complex", "0d", "0col", "list", "huge", "short"])
    fx = {"ok": x, "nan": np.where(x > 2.5, np.nan, x), "complex": x.astype(complex), "0d": np.float64(1.0),
          "0col": x[:, :0], "list": x.tolist(), "huge": x * 1e200, "short": x[:-3]}[feats]
    if feats not in ("ok", "list"):
        verdicts.append(FAIL if kw["method"] != "random" or feats in ("0d", "short") else EITHER)
    verdict = FAIL if FAIL in verdicts else EITHER if EITHER in verdicts else PASS
    return fx, kw, verdict


def test_fuzz_api_select(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path that silently meant the working folder writes here, not in the repo
    from topodata.select import save_selection, select

    r = random.Random(SEED + 1)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(45, 3)), np.repeat([0, 1, 2], 15)
    problems = []
    for case in range(N_API):
        fx, kw, verdict = _api_case(r, x, y)
        tag = f"case {case}: select(features, labels, **{kw!r})"
        try:
            res = select(fx, y, **kw)
        except TopodataInputError as exc:  # TypeErrors of bad input are TopodataTypeErrors
            if verdict == PASS:
                problems.append(f"{tag}: valid input refused: {exc}")
            if "\n" in str(exc):
                problems.append(f"{tag}: message of several lines")
            continue
        except Exception:  # noqa: BLE001
            problems.append(f"{tag}: {traceback.format_exc()}")
            continue
        if verdict == FAIL:
            problems.append(f"{tag}: invalid input silently accepted")
            continue
        try:
            save_selection(res, tmp_path / f"api{case}")
            _check_selection(tmp_path / f"api{case}", {})
        except Exception:  # noqa: BLE001
            problems.append(f"{tag}: result not saved consistently: {traceback.format_exc()}")
    assert not problems, f"{len(problems)} of {N_API} API cases broke the contract:\n" + "\n".join(problems[:15])


def _float_fields():
    from topodata.cli.select import _method_config
    from topodata.scores import METHODS

    for name in METHODS:
        config = _method_config(name)
        if config is None:
            continue
        for f in dataclasses.fields(config):
            if f.init and (f.type in ("float", float) or isinstance(f.default, float)):
                yield name, config, f.name


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_float_hyper_parameter_refuses_non_finite(value):
    fields = list(_float_fields())
    assert len(fields) >= 8
    accepted = []
    for name, config, field in fields:
        try:
            config(**{field: value})
        except TopodataInputError:
            continue
        accepted.append(f"{name}.{field}")
    assert not accepted, f"{value} accepted by {accepted}"


def test_fuzz_every_numeric_option_of_every_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path that silently meant the working folder writes here, not in the repo
    """Non-finite or non-numeric values of any float/int option: exit 2 at parse time, one line, nothing run."""
    import argparse

    from topodata.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = []
    for command, child in sub.choices.items():
        for action in child._actions:
            if action.option_strings and action.type is not None:
                kind = getattr(action.type, "__name__", "")
                if kind in ("_finite_float", "int"):
                    options.append((command, action.option_strings[-1], kind))
    assert len({c for c, _, _ in options}) >= 5 and len(options) >= 40
    r = random.Random(SEED + 2)
    problems = []
    for case in range(150):
        command, option, kind = r.choice(options)
        value = r.choice(["nan", "inf", "-inf", "NaN", "abc", ""] + (["1.5", "1e3"] if kind == "int" else []))
        out = tmp_path / f"o{case}"
        argv = [command, option, value, "--out", str(out)]
        rc, err, tb = _run(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        if tb is not None or rc != 2 or len(lines) != 1 or os.listdir(tmp_path):
            problems.append(f"topodata {' '.join(argv)}: exit {rc}, stderr {err!r}\n{tb or ''}")
    assert not problems, "\n".join(problems[:10])
