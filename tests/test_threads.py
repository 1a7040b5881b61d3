"""Same seed, same subset whatever the thread count (topodata._threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from topodata._threads import canonical_threads, thread_count
from topodata._validation import TopodataInputError

# every method on one cached digits embedding (2 proxy epochs), in a fresh process per thread count
SCRIPT = """
import hashlib, json, sys
import numpy as np
from topodata.embed import embed_cached
from topodata.scores import METHODS
from topodata.select import select
emb = embed_cached("digits", model="mlp", epochs=2, random_state=0, cache_dir=sys.argv[1], device="cpu",
                   progress=False)
out = {"features": hashlib.sha256(emb.features.tobytes()).hexdigest()}
for m, spec in METHODS.items():
    r = select(emb.features, emb.labels, rate=0.9, method=m, random_state=3,
               dynamics=emb.dynamics if spec.uses_dynamics else None)
    out[m] = hashlib.sha256(np.ascontiguousarray(r.indices, dtype=np.int64).tobytes()).hexdigest()
print(json.dumps(out))
"""


def test_indices_do_not_depend_on_the_thread_count(tmp_path):
    runs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads}
        env.pop("TOPODATA_THREADS", None)
        r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"cache{threads}")], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    from topodata.scores import METHODS

    assert set(runs[0]) == {"features", *METHODS}
    differ = sorted(k for k in runs[0] if runs[0][k] != runs[1][k])
    assert differ == [], f"these changed with OMP_NUM_THREADS: {differ}"


def test_canonical_threads_sets_and_restores_torch():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with canonical_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.delenv("TOPODATA_THREADS", raising=False)
    assert thread_count() == 1
    monkeypatch.setenv("TOPODATA_THREADS", "3")
    assert thread_count() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("TOPODATA_THREADS", bad)
        with pytest.raises(TopodataInputError, match="TOPODATA_THREADS"):
            thread_count()


def test_thread_count_is_part_of_the_embedding_cache_key(monkeypatch):
    from topodata.embed.proxy import cache_key

    kw = dict(model="mlp", proxy_fraction=1.0, epochs=2, random_state=0, batch_size=256, lr=None, optimizer="sgd")
    monkeypatch.delenv("TOPODATA_THREADS", raising=False)
    one = cache_key("digits", **kw)
    monkeypatch.setenv("TOPODATA_THREADS", "2")
    assert cache_key("digits", **kw) != one
