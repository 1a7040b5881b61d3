"""The shared input checks (topodata._validation) and the CLI's one error path."""

from __future__ import annotations

import numpy as np
import pytest

from topodata import _validation as V
from topodata._validation import TopodataInputError, TopodataTypeError


def test_error_types_are_value_and_type_errors():
    assert issubclass(TopodataInputError, ValueError)
    assert issubclass(TopodataTypeError, TopodataInputError) and issubclass(TopodataTypeError, TypeError)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf")])
def test_check_scalar_refuses_non_finite(value):
    with pytest.raises(TopodataInputError, match="lr must be a finite number"):
        V.check_scalar(value, "lr", (int, float), min_val=0.0)
    assert np.isnan(V.check_scalar(np.float64("nan"), "x", float, allow_nonfinite=True))


def test_check_scalar_takes_numpy_scalars_as_python_ones():
    out = V.check_scalar(np.int64(5), "n_strata", int, min_val=1)
    assert out == 5 and type(out) is int
    out = V.check_scalar(np.float32(0.5), "beta", float, max_val=1.0)
    assert out == 0.5 and type(out) is float
    with pytest.raises(TopodataTypeError, match="n_strata must be of type int; got bool"):
        V.check_scalar(np.bool_(True), "n_strata", int)
    with pytest.raises(TopodataTypeError, match="got float 1.5"):
        V.check_scalar(1.5, "k", int)


@pytest.mark.parametrize("x, match", [
    (np.ones((4, 2)) + 1j, "must be real; got complex"),
    (np.float64(2.0), "must be 2-D; got shape ()"),
    (np.ones((4, 0)), "has 0 feature column"),
    (np.ones((4, 2)) * 1e200, "squared distances overflow"),
    (np.array([[1.0, np.nan]] * 3), "NaN or inf in 3 sample"),
    (np.array([["a", "b"]] * 3), "must be a numeric array"),
])
def test_check_features_refuses(x, match):
    with pytest.raises(TopodataInputError, match=match):
        V.check_features(x)


def test_check_features_accepts_ints_and_lists():
    assert V.check_features([[1, 2], [3, 4]]).dtype == np.float64
    assert V.check_features(np.ones((3, 2), np.float32), dtype=np.float32).dtype == np.float32


def test_check_rate_and_budgets():
    assert V.check_rate(np.float32(0.5)) == 0.5
    for bad in (0, 1, float("nan"), -0.1):
        with pytest.raises(TopodataInputError, match="strictly between 0 and 1"):
            V.check_rate(bad)
    with pytest.raises(TopodataTypeError):
        V.check_rate(True)
    with pytest.raises(TopodataInputError, match="keeps 0 of 100 samples"):
        V.check_budgets({0: 0, 1: 0}, 0.999999999999, {0: 50, 1: 50})
    with pytest.raises(TopodataInputError, match=r"keeps no sample of class 1 \(3 samples\)"):
        V.check_budgets({0: 5, 1: 0}, 0.9, {0: 97, 1: 3})
    V.check_budgets({0: 5, 1: 1}, 0.9)


def test_check_random_state_and_options():
    assert isinstance(V.check_random_state(np.int64(3)), np.random.Generator)
    with pytest.raises(TopodataTypeError):
        V.check_random_state(True)
    with pytest.raises(TopodataInputError, match="seed must be a non-negative"):
        V.check_random_state(-1)
    with pytest.raises(TopodataInputError, match="must be one of"):
        V.check_options(np.array(["a", "b"]), "strategy", ("a", "b"))
    assert V.check_options("a", "strategy", ("a", "b")) == "a"


@pytest.mark.parametrize("argv, message", [
    (["select", "--rate", "nan"], "argument --rate: expected a finite number, got 'nan'"),
    (["select", "--rate", "0.5", "--out", ""], "argument --out: expected a path, got an empty string"),
    (["train", "--indices", "", "--out", "o"], "argument --indices: expected a path"),
])
def test_cli_parse_errors_are_one_line(argv, message, capsys):
    from topodata.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_cli_keeps_the_traceback_of_a_bug(monkeypatch, tmp_path):
    """Only input errors and file-system errors become one line; an internal KeyError propagates."""
    import topodata.cli.env as env_cmd
    from topodata.cli import main

    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(env_cmd, "run", broken)
    with pytest.raises(KeyError, match="internal"):
        main(["env"])


def test_cli_file_system_error_is_one_line(tmp_path, capsys):
    from topodata.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(20, 2)))
    np.save(tmp_path / "y.npy", np.repeat([0, 1], 10))
    out = tmp_path / ("n" * 300)
    code = main(["select", "--embeddings", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.5", "--method", "random", "--out", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the file name is too long" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]
