"""The benchmark runner: pipeline schema, cell grid, resumable runs, report numbers, noise, transfer."""

from __future__ import annotations

import csv
import json
import platform
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from topodata._validation import TopodataInputError
from topodata.bench import (
    add_feature_noise,
    enumerate_cells,
    gap_recovered,
    jaccard,
    load_pipeline,
    parse_pipeline,
    read_results,
    run_pipeline,
)
from topodata.cli import build_parser, main

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
SMOKE = PIPELINES / "digits_smoke.toml"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The digits smoke pipeline run once through the command; later tests read its outputs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench") / "smoke"
    with threadpool_limits(1):
        rc = main(["bench", str(SMOKE), "--out", str(out), "--no-progress"])
    torch.set_num_threads(before)
    assert rc == 0
    return out


def _ids(out: Path) -> list[str]:
    return [r["cell_id"] for r in read_results(out / "results.csv")]


# --- schema ----------------------------------------------------------------------------------------

GOOD = """
dataset = "digits"
methods = ["random", "moderate"]
rates = [0.5, 0.9]
seeds = [0, 1]
[trainer]
model = "mlp"
steps = 10
"""


def test_parse_smoke_pipeline():
    p = load_pipeline(SMOKE)
    assert p.name == "digits_smoke" and p.dataset == "digits"
    assert p.methods == ("random", "moderate") and p.rates == (0.5, 0.9) and p.seeds == (0, 1)
    assert p.trainer.steps == 30 and p.embedder.params == {"epochs": 10}
    assert p.noise is None and p.transfer is None and "digits" in p.source
    assert p.selection.sampler == "key"  # the select default, part of the protocol
    assert p.protocol()["selection"]["sampler"] == "key"
    draw = parse_pipeline(GOOD + "[selection]\nsampler = 'draw'\n")
    assert draw.selection.sampler == "draw" and draw.protocol_hash() != parse_pipeline(GOOD).protocol_hash()
    # class budgets: each method's own unless the pipeline names one (then it is part of the protocol)
    assert p.selection.class_balance is None
    bnd = parse_pipeline(GOOD + "[selection]\nclass_balance = 'boundary'\n")
    assert bnd.selection.class_balance == "boundary" and bnd.protocol_hash() != parse_pipeline(GOOD).protocol_hash()


@pytest.mark.parametrize(
    "edit, match",
    [
        (GOOD.replace("steps = 10", "stepz = 10"),
         r"unknown key 'trainer.stepz' in \[trainer\]; allowed: batch_size, device, lr, model, params, probe, steps"),
        (GOOD + "colour = 1\n", r"unknown key 'trainer.colour'"),
        ("seedz = [1]\n" + GOOD, r"unknown key 'seedz' in the top level"),
        (GOOD.replace("steps = 10", ""), r"\[trainer\] needs 'steps'"),
        (GOOD.replace('"moderate"', '"modrate"'), r"methods has unknown value 'modrate'"),
        (GOOD.replace("0.5, 0.9", "0.5, 1.5"), r"rates must be the fraction removed, strictly between 0 and 1; got 1.5"),
        (GOOD.replace("[0, 1]", "[0, 0]"), r"seeds lists a value twice"),
        (GOOD.replace("[0, 1]", "[]"), r"seeds must be a non-empty list"),
        (GOOD.replace("steps = 10", 'steps = "ten"'), r"trainer.steps must be an integer; got 'ten'"),
        (GOOD.replace('dataset = "digits"', ""), r"missing required key 'dataset'"),
        (GOOD + "[noise]\nscales = [0.0]\n", r"noise.scales must be > 0"),
        (GOOD + "[selection]\nmethod_params = { kcenter = {} }\n", r"method_params has key 'kcenter'"),
        (GOOD + "[transfer]\ntrainers = ['mlp']\n", r"missing required key 'transfer.embedders'"),
        (GOOD + "[selection]\nsampler = 'fresh'\n", r"selection.sampler must be one of"),
        (GOOD + "[selection]\nclass_balance = 'equal'\n", r"selection.class_balance must be one of"),
        ("dataset = [", r"not valid TOML"),
    ],
)
def test_bad_pipeline_one_clear_error(edit, match):
    with pytest.raises(TopodataInputError, match=match):
        parse_pipeline(edit, origin="p.toml")


def test_bad_toml_key_through_the_command(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("steps = 10", "stepz = 10"))
    rc = main(["bench", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown key 'trainer.stepz'" in err
    assert not (tmp_path / "out").exists()
    assert main(["bench", str(tmp_path / "none.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_unknown_model_fails_before_any_work(tmp_path):
    p = parse_pipeline(GOOD.replace('model = "mlp"', 'model = "vgg"'))
    with pytest.raises(TopodataInputError, match=r"unknown trainer model 'vgg'"):
        run_pipeline(p, tmp_path / "out", progress=False)
    p = parse_pipeline(GOOD + "params = { max_iterations = 3 }\n")
    with pytest.raises(TopodataInputError, match=r"trainer.params has unknown option 'max_iterations'; allowed: .*weight_decay"):
        run_pipeline(p, tmp_path / "out", progress=False)
    p = parse_pipeline(GOOD + "[embedder]\nparams = { epoch = 3 }\n")
    with pytest.raises(TopodataInputError, match=r"embedder.params has unknown option 'epoch'; allowed: .*epochs"):
        run_pipeline(p, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# --- the grid --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n_cells",
    [
        ("fashion_mnist", 7 * 4 * 3 + 3),  # + the full-data row per seed
        ("fashion_mnist_noise", (7 + 6 * 3) * 3 + 3),  # random has no noisy cells
        ("fashion_mnist_transfer", (3 * 9 + 3) * 3 + 3 * 3),  # random: one embedder; full data per model
        ("digits_smoke", 2 * 2 * 2 + 2),
        ("fashion_mnist_long", 4 * 4 * 3 + 3),
        ("fashion_mnist_transfer_cpu", (3 * 4 + 2) * 3 + 2 * 3),
        ("fashion_mnist_noise_long", (4 + 2 * 3) * 3 + 3),  # noisy cells for d2 and topoprune only
        ("fashion_mnist_extrapolation", 3 * 3 + 3),
    ],
)
def test_cell_counts_of_the_shipped_pipelines(name, n_cells):
    cells = enumerate_cells(load_pipeline(PIPELINES / f"{name}.toml"))
    assert len(cells) == n_cells
    assert len({c.cell_id for c in cells}) == n_cells
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+", c.cell_id) for c in cells)


def test_only_methods_keeps_full_data_cells():
    p = load_pipeline(SMOKE)
    ids = [c.cell_id for c in enumerate_cells(p, only_methods=("moderate",))]
    assert ids[:2] == ["full_s0_none-mlp", "full_s1_none-mlp"] and len(ids) == 2 + 4
    assert all("random" not in i for i in ids)
    with pytest.raises(TopodataInputError, match=r"only_methods has 'kcenter'"):
        enumerate_cells(p, only_methods=("kcenter",))


# --- metrics -------------------------------------------------------------------------------------


def test_gap_recovered_by_hand():
    assert gap_recovered(0.85, 0.80, 0.90) == pytest.approx(0.5)
    assert gap_recovered(0.80, 0.80, 0.90) == 0.0
    assert gap_recovered(0.90, 0.80, 0.90) == 1.0
    assert gap_recovered(0.78, 0.80, 0.90) == pytest.approx(-0.2)
    assert np.isnan(gap_recovered(0.85, 0.90, 0.90))  # no gap to recover
    assert np.isnan(gap_recovered(0.85, None, 0.90))


def test_feature_noise_and_jaccard():
    x = np.random.default_rng(0).normal(scale=[1.0, 3.0], size=(20000, 2))
    noisy = add_feature_noise(x, 0.5, random_state=1)
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    assert (noisy - x).std() == pytest.approx(0.5 * 2.0, rel=0.02)  # 0.5 x mean of the stds (1, 3)
    np.testing.assert_array_equal(noisy, add_feature_noise(x, 0.5, random_state=1))
    assert jaccard([1, 2, 3], [2, 3, 4]) == 0.5 and jaccard([1], [1]) == 1.0 and jaccard([1], [2]) == 0.0


# --- end to end ------------------------------------------------------------------------------------


def test_smoke_pipeline_writes_the_three_outputs(smoke_run):
    for name in ("results.csv", "results.md", "accuracy_vs_rate.png", "pipeline.toml", "versions.json",
                 "protocol.json"):
        assert (smoke_run / name).is_file(), name
    assert (smoke_run / "accuracy_vs_rate.png").read_bytes()[:4] == b"\x89PNG"
    assert (smoke_run / "pipeline.toml").read_text() == SMOKE.read_text()
    cpu = json.loads((smoke_run / "versions.json").read_text())["cpu"]  # the kernel set decides the low bits
    assert cpu == f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    rows = read_results(smoke_run / "results.csv")
    assert len(rows) == 10 and all(0 <= r["accuracy"] <= 1 for r in rows)
    by_id = {r["cell_id"]: r for r in rows}
    assert by_id["random_r0.9_s0_mlp-mlp"]["n_train"] == 1433 - int(0.9 * 1433)
    assert by_id["full_s1_none-mlp"]["n_train"] == 1433
    sel = smoke_run / "cells" / "moderate_r0.5_s1_mlp-mlp"
    assert np.load(sel / "indices.npy").size == 1433 - 716
    assert {"indices.npy", "scores.npy", "manifest.json", "metrics.json"} <= {p.name for p in sel.iterdir()}


def test_table_numbers_match_a_hand_computation(smoke_run):
    rows = read_results(smoke_run / "results.csv")

    def mean(method, rate=None):
        return np.mean([r["accuracy"] for r in rows if r["method"] == method and (rate is None or r["rate"] == rate)])

    def std(method, rate):
        return np.std([r["accuracy"] for r in rows if r["method"] == method and r["rate"] == rate], ddof=1)

    md = (smoke_run / "results.md").read_text()
    acc_table, gap_table = md.split("## Fraction of the Random")
    full = mean("full")
    for rate in (0.5, 0.9):
        line = next(l for l in acc_table.splitlines() if l.startswith("| moderate |"))
        assert f"{100 * mean('moderate', rate):.2f} ± {100 * std('moderate', rate):.2f}" in line
        g = (mean("moderate", rate) - mean("random", rate)) / (full - mean("random", rate))
        line = next(l for l in gap_table.splitlines() if l.startswith("| moderate |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1 + (0.5, 0.9).index(rate)] == f"{g:.2f}"
    assert f"| full data (all kept) | {100 * full:.2f} ± " in acc_table
    assert "| random | 0.00 | 0.00 |" in gap_table


def test_second_run_recomputes_nothing(smoke_run, capsys):
    csv_before = (smoke_run / "results.csv").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (smoke_run / "cells").rglob("*")}
    summary = run_pipeline(SMOKE, smoke_run, progress=False)
    assert summary.ran == [] and len(summary.done_before) == 10 and summary.n_left == 0
    assert (smoke_run / "results.csv").read_bytes() == csv_before
    assert {p: p.stat().st_mtime_ns for p in (smoke_run / "cells").rglob("*")} == stamps
    assert main(["bench", str(SMOKE), "--out", str(smoke_run), "--no-progress"]) == 0
    assert "10 done before, 0 run now" in capsys.readouterr().out


def test_interrupted_run_resumes_without_redoing_cells(smoke_run, tmp_path, capsys):
    out = tmp_path / "resume"
    assert main(["bench", str(SMOKE), "--out", str(out), "--max-cells", "3", "--no-progress"]) == 0
    assert "3 run now" in capsys.readouterr().out and len(_ids(out)) == 3
    assert (out / "results.md").is_file()  # the report of what is done so far
    first = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*")}
    # a crash in the middle of an append leaves a partial last line: that cell simply runs again
    with open(out / "results.csv", "a") as fh:
        fh.write("random_r0.5_s0_mlp-mlp,main,ran")
    summary = run_pipeline(SMOKE, out, progress=False)
    assert len(summary.done_before) == 3 and len(summary.ran) == 7 and summary.n_left == 0
    assert not set(summary.done_before) & set(summary.ran)
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())
    assert sorted(_ids(out)) == sorted(_ids(smoke_run))
    # same protocol, same seeds: the resumed numbers equal those of the uninterrupted run
    acc = lambda d: {r["cell_id"]: r["accuracy"] for r in read_results(d / "results.csv")}
    assert acc(out) == acc(smoke_run)


def test_dry_run_and_parser(smoke_run, tmp_path, capsys):
    args = build_parser().parse_args(["bench", "p.toml", "--only-methods", "random,moderate", "kcenter",
                                      "--max-cells", "3", "--dry-run"])
    assert str(args.pipeline) == "p.toml" and args.max_cells == 3 and args.dry_run and args.out is None
    assert [m for g in args.only_methods for m in g] == ["random", "moderate", "kcenter"]
    assert main(["bench", str(SMOKE), "--out", str(smoke_run), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "done  moderate_r0.9_s1_mlp-mlp" in out and "10 done, 0 to run" in out
    assert main(["bench", str(SMOKE), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    assert "0 done, 10 to run" in capsys.readouterr().out and not (tmp_path / "new").exists()


def test_other_protocol_is_refused(smoke_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(smoke_run, out, symlinks=True)  # the output links stay links
    changed = SMOKE.read_text().replace("steps = 30", "steps = 31")
    with pytest.raises(TopodataInputError, match=r"another protocol \(differs in trainer.steps\)"):
        run_pipeline(parse_pipeline(changed, name="digits_smoke"), out, progress=False)
    # more seeds is the same protocol: only the new cells run
    more = SMOKE.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]")
    s = run_pipeline(parse_pipeline(more), out, progress=False, only_methods=["random"], max_cells=0)
    assert len(s.done_before) == 6 and s.n_left == 3  # full_s2 + random at two rates


def test_pipelines_sharing_a_folder_keep_their_own_reports(smoke_run, tmp_path):
    """A second pipeline of the same protocol reuses the finished cells and writes <name>.results.md."""
    out = tmp_path / "shared"
    shutil.copytree(smoke_run, out, symlinks=True)  # the output links stay links
    owner = {n: (out / n).read_bytes() for n in ("results.md", "pipeline.toml", "accuracy_vs_rate.png")}
    text = re.sub(r'name = "digits_smoke"', 'name = "digits_half"', SMOKE.read_text())
    text = text.replace("rates = [0.5, 0.9]", "rates = [0.5]")
    s = run_pipeline(parse_pipeline(text), out, progress=False)
    assert s.ran == [] and s.n_left == 0  # its cells are a subset of the owner's
    assert {n: (out / n).read_bytes() for n in owner} == owner
    assert (out / "digits_half.pipeline.toml").read_text() == text
    md = (out / "digits_half.results.md").read_text()
    assert md.startswith("# digits_half") and "| rate 0.5 (50% kept) |\n" in md and "rate 0.9" not in md
    assert (out / "digits_half.accuracy_vs_rate.png").read_bytes()[:4] == b"\x89PNG"
    # the owner, run again, still writes the unprefixed report
    run_pipeline(SMOKE, out, progress=False)
    assert not (out / "digits_smoke.results.md").exists()


NOISE_TRANSFER = """
name = "digits_noise_transfer"
dataset = "digits"
methods = ["random", "moderate"]
rates = [0.8]
seeds = [0, 1]
[embedder]
model = "mlp"
params = { epochs = 4 }
[trainer]
model = "probe"
steps = 20
probe = { max_iter = 30 }  # enough for a look, fast in a test
[noise]
scales = [0.5, 2.0]
[transfer]
embedders = ["mlp", "lenet300100"]
trainers = ["probe", "mlp"]
"""


def test_noise_and_transfer_pipeline(tmp_path):
    p = parse_pipeline(NOISE_TRANSFER)
    cells = enumerate_cells(p)
    # per seed: full (probe x 2 embedders + mlp) 3, random 1 + 2 (transfer: probe on lenet, mlp once),
    # moderate 1 clean + 2 noisy + 3 more (A, B) pairs
    assert len(cells) == 2 * (3 + 3 + 6)
    s = run_pipeline(p, tmp_path / "nt", progress=False)
    assert not s.failed and s.n_left == 0
    rows = read_results(tmp_path / "nt" / "results.csv")
    noisy = [r for r in rows if r["noise"]]
    assert {r["method"] for r in noisy} == {"moderate"} and len(noisy) == 4
    assert all(0.0 <= r["jaccard"] <= 1.0 for r in noisy)
    # much noise moves the selection further than little noise, on average over seeds
    j = {sc: np.mean([r["jaccard"] for r in noisy if r["noise"] == sc]) for sc in (0.5, 2.0)}
    assert j[2.0] < j[0.5] < 1.0
    # the jaccard in the CSV is recomputable from the saved selections
    r = noisy[0]
    clean = f"moderate_r0.8_s{r['seed']}_mlp-probe"
    got = jaccard(np.load(tmp_path / "nt" / "cells" / r["cell_id"] / "indices.npy"),
                  np.load(tmp_path / "nt" / "cells" / clean / "indices.npy"))
    assert got == pytest.approx(r["jaccard"], abs=1e-6)
    # a transfer selection is shared by the trained models: same indices for B = probe and B = mlp
    a = np.load(tmp_path / "nt" / "cells" / "moderate_r0.8_s0_lenet300100-probe" / "indices.npy")
    b = np.load(tmp_path / "nt" / "cells" / "moderate_r0.8_s0_lenet300100-mlp" / "indices.npy")
    np.testing.assert_array_equal(a, b)
    md = (tmp_path / "nt" / "results.md").read_text()
    assert "## Robustness to noise" in md and "## Transfer" in md and "trainer **probe**" in md
    assert "| random | 1 (ignores features) | 1 (ignores features) |" in md
    assert "| A = lenet300100 |" in md
    random_block = md.split("### random, rate 0.8")[1].split("###")[0]
    assert "–" not in random_block  # every (A, B) of random is filled, B = mlp from the one shared cell
    for png in ("accuracy_vs_rate.png", "noise.png", "transfer.png"):
        assert (tmp_path / "nt" / png).read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "nt" / "results.csv") as fh:
        assert len(list(csv.reader(fh))) == 1 + len(cells)


# --- one library call for select and bench ------------------------------------------------------------


@pytest.mark.parametrize("cell, argv", [
    ("moderate_r0.9_s1_mlp-mlp", ["--method", "moderate", "--rate", "0.9", "--seed", "1"]),
    ("random_r0.5_s0_mlp-mlp", ["--method", "random", "--rate", "0.5", "--seed", "0"]),
])
def test_select_command_gives_the_bench_cells_indices(smoke_run, tmp_path, cell, argv):
    """`topodata select` with the pipeline's embedder settings writes the bench cell's indices, byte for byte."""
    out = tmp_path / "sel"
    assert main(["select", "--dataset", "digits", *argv, "--model", "mlp", "--epochs", "10", "--out", str(out),
                 "-q"]) == 0
    bench = smoke_run / "cells" / cell
    assert (out / "indices.npy").read_bytes() == (bench / "indices.npy").read_bytes()
    assert (out / "scores.npy").read_bytes() == (bench / "scores.npy").read_bytes()


# --- checks before compute ----------------------------------------------------------------------------


@pytest.mark.parametrize("table, match", [
    ("{ moderate = { k = 1 } }", r"p.toml: selection.method_params.moderate: method 'moderate' has no option 'k'"),
    ("{ topoprune = { manifold = 'umpa' } }", r"p.toml: selection.method_params.topoprune: manifold .*'umpa'"),
    ("{ topoprune = { k_local = 1 } }", r"selection.method_params.topoprune: k_local"),
    ("{ topoprune = { klocal = 8 } }", r"has no option 'klocal'; its options: .*k_local"),
])
def test_method_params_are_checked_when_the_pipeline_loads(table, match):
    text = GOOD.replace('"moderate"', '"moderate", "topoprune"') + f"[selection]\nmethod_params = {table}\n"
    with pytest.raises(TopodataInputError, match=match):
        parse_pipeline(text, origin="p.toml")


def test_method_params_typo_through_the_command(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"moderate"', '"topoprune"') + "[selection]\nmethod_params = { topoprune = { k = 8 } }\n")
    rc = main(["bench", str(bad), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "method 'topoprune' has no option 'k'" in err
    assert not (tmp_path / "out").exists()


def test_options_no_cell_reads_warn_at_load():
    with pytest.warns(UserWarning, match=r"noise.methods lists 'random', which reads no features"):
        parse_pipeline(GOOD + "[noise]\nscales = [0.5]\nmethods = ['random', 'moderate']\n", origin="p.toml")
    with pytest.warns(UserWarning, match=r"trainer.probe is ignored: no trainer is 'probe'"):
        parse_pipeline(GOOD.replace("steps = 10", "steps = 10\nprobe = { C = 2.0 }"))
    with pytest.warns(UserWarning, match=r"trainer.params is ignored: every trainer is 'probe'"):
        parse_pipeline(GOOD.replace('model = "mlp"', 'model = "probe"\nparams = { weight_decay = 0.0 }'))


# --- a failing cell -----------------------------------------------------------------------------------

FAILING = """
dataset = "npz:{path}"
methods = ["random"]
rates = [0.5, 0.99]
seeds = [0]
[embedder]
model = "mlp"
params = {{ epochs = 2 }}
[trainer]
model = "probe"
probe = {{ max_iter = 50 }}
"""


def _skewed_npz(path, n_small: int) -> None:
    """Class 0 of 200 samples and two classes of ``n_small``: at rate 0.99 only class 0 keeps any."""
    rng = np.random.default_rng(0)
    sizes = [200, n_small, n_small]
    y = np.repeat(np.arange(3), sizes)
    x = (rng.normal(size=(y.size, 8)) + 2 * y[:, None]).astype(np.float32)
    yt = np.repeat(np.arange(3), 10)
    xt = (rng.normal(size=(yt.size, 8)) + 2 * yt[:, None]).astype(np.float32)
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)


def test_failed_cell_is_logged_reported_and_retried(tmp_path, capsys):
    """A cell whose training raises costs only that cell; errors.log keeps the traceback; the next run retries it."""
    data = tmp_path / "skewed.npz"
    _skewed_npz(data, n_small=3)
    pipe = tmp_path / "failing.toml"
    pipe.write_text(FAILING.format(path=data))
    out = tmp_path / "out"
    bad_cell = "random_r0.99_s0_mlp-probe"
    rc = main(["bench", str(pipe), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1  # the run finished, with a failure
    assert f"topodata bench: cell {bad_cell} failed: ValueError" in captured.err
    assert "3 cells: 0 done before, 2 run now, 1 failed, 1 left" in captured.out
    assert f"failed cells (rerun to retry; tracebacks in {out / 'errors.log'}): {bad_cell}" in captured.out
    log = (out / "errors.log").read_text()
    assert log.startswith(f"=== {bad_cell} (") and "Traceback (most recent call last)" in log
    assert "ValueError" in log and "class" in log  # scikit-learn: one class only in the kept samples
    assert sorted(_ids(out)) == ["full_s0_mlp-probe", "random_r0.5_s0_mlp-probe"]
    assert not (out / "cells" / bad_cell / "metrics.json").exists()
    assert (out / "results.md").is_file()  # the report of the finished cells is written all the same

    # same data: the next run retries only the failed cell (and it fails the same way again)
    s = run_pipeline(pipe, out, progress=False)
    assert s.ran == [] and s.failed == [bad_cell] and len(s.done_before) == 2
    assert (out / "errors.log").read_text().count(f"=== {bad_cell} (") == 2

    # fixed data: the retry succeeds and the finished cells are left as they were
    before = (out / "results.csv").read_text()
    _skewed_npz(data, n_small=30)
    s = run_pipeline(pipe, out, progress=False)
    assert s.ran == [bad_cell] and s.failed == [] and s.n_left == 0
    assert (out / "results.csv").read_text().startswith(before)
    assert sorted(_ids(out)) == sorted(["full_s0_mlp-probe", "random_r0.5_s0_mlp-probe", bad_cell])
    row = next(r for r in read_results(out / "results.csv") if r["cell_id"] == bad_cell)
    assert row["n_train"] == 260 - int(0.99 * 260)


# --- score extrapolation in a pipeline -----------------------------------------------------------------

EXTRAP = GOOD.replace('"moderate"', '"el2n"') + """
[embedder]
model = "mlp"
proxy_fraction = 0.5
params = { epochs = 4 }
[selection]
score_fraction = 0.5
extrapolate = "knn"
"""


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace('"el2n"', '"moderate"'), "none of the methods .* can be extrapolated"),
    (lambda t: t.replace("proxy_fraction = 0.5", "proxy_fraction = 0.3"), "embedder.proxy_fraction 0.3 with"),
    (lambda t: t.replace("score_fraction = 0.5\n", ""), "extrapolate and extrapolate_params need score_fraction"),
    (lambda t: t.replace("score_fraction = 0.5", "score_fraction = 1.5"), "score_fraction"),
])
def test_extrapolation_options_are_checked_when_the_pipeline_loads(edit, match):
    with pytest.raises(TopodataInputError, match=match):
        parse_pipeline(edit(EXTRAP), name="p")


def test_extrapolation_only_changes_the_protocol_when_set():
    plain = parse_pipeline(GOOD, name="p").protocol()["selection"]
    assert "score_fraction" not in plain and "extrapolate" not in plain
    sel = parse_pipeline(EXTRAP, name="p").protocol()["selection"]
    assert sel["score_fraction"] == 0.5 and sel["extrapolate"] == "knn"


def test_pipeline_cells_score_a_fraction_and_extrapolate(tmp_path):
    """el2n cells extrapolate from the proxy's half; random cells run as usual in the same pipeline."""
    text = EXTRAP.replace("rates = [0.5, 0.9]", "rates = [0.5]").replace("seeds = [0, 1]", "seeds = [0]")
    p = parse_pipeline(text.replace('dataset = "digits"', 'dataset = "digits"\nfull_data = false'), name="ex")
    with threadpool_limits(1):
        run_pipeline(p, tmp_path / "ex", progress=False)
    cells = tmp_path / "ex" / "cells"
    import json

    el2n = json.loads((cells / "el2n_r0.5_s0_mlp-mlp" / "manifest.json").read_text())
    info = el2n["params"]["extrapolation"]
    assert info["score_fraction"] == 0.5 and info["extrapolator"] == "knn"
    assert info["scored_set"].startswith("the proxy's training set") and info["n_scored"] == 719  # half of 1,437, per class
    assert el2n["embedding"]["proxy_fraction"] == 0.5
    rand = json.loads((cells / "random_r0.5_s0_mlp-mlp" / "manifest.json").read_text())
    assert "extrapolation" not in rand["params"]
    assert len(np.load(cells / "el2n_r0.5_s0_mlp-mlp" / "indices.npy")) == len(
        np.load(cells / "random_r0.5_s0_mlp-mlp" / "indices.npy"))
