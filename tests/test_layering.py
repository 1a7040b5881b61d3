"""The package's import layering: no cycle between sub-packages or stage modules, no private name
imported across them.

Every module of ``topodata`` is parsed (``ast``) and every import is collected, at module level and
inside functions alike. A *unit* is a sub-package (``topodata.weights``) or a top-level module
(``topodata.select``). Units import only units of a lower layer; the leaf modules import only
each other and may be imported from anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import topodata

ROOT = Path(topodata.__file__).parent
LEAVES = {"_validation", "_io", "_meta", "_threads", "_engine", "_ray"}
# Lower layers first; a unit may import only units listed before it (and the leaves).
LAYERS = [
    ["data"],
    ["nn"],  # model zoo, training loop, augmentation, training dynamics
    ["embed"],
    ["neighbors"],
    ["manifold", "dedup"],
    ["topology"],
    ["weights", "scores", "plots"],
    ["extrapolate"],  # score extrapolation: a method's scores on a fraction -> every sample's
    ["select"],
    ["train"],
    ["pipeline"],  # dataset spec -> selection, the one library call of `select` and `bench`
    ["bench", "report"],
    ["cli"],
    ["__init__", "__main__"],
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
# Imports the layering forbids that are still in the tree, each with the reason it is tolerated.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = {
    # report draws with two private helpers of plots; they want public names
    ("topodata.report", "topodata.plots"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _metadata(b: str, name: str) -> bool:
    """``from topodata import __version__``: the package's metadata, not a layer."""
    return b == "topodata" and name.startswith("__")


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _is_package(module: str) -> bool:
    return (ROOT.parent / module.replace(".", "/") / "__init__.py").exists()


def imports() -> list[tuple[str, str, str, int]]:
    """``(importer, imported module, imported name or '', line)`` for every topodata-internal import."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = _module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out += [(importer, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "topodata"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "topodata":
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() or _is_package(sub):
                        out.append((importer, sub, "", node.lineno))  # a submodule
                    else:
                        out.append((importer, target, a.name, node.lineno))
    return out


IMPORTS = imports()


def test_the_walk_sees_module_and_function_level_imports():
    found = {(a, b, n) for a, b, n, _ in IMPORTS}
    assert ("topodata.weights.graphs", "topodata._validation", "") in found  # from .. import _validation as V
    assert ("topodata.weights.pruning", "topodata.nn.loop", "fit") in found  # inside iterative_pruning
    assert ("topodata.train.subset", "topodata.select", "load_indices") in found
    assert len(IMPORTS) > 150


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert not units - set(RANK) - LEAVES, "place the new module in LAYERS"


def test_leaf_modules_import_only_leaves():
    bad = [(a, b, line) for a, b, _, line in IMPORTS if _unit(a) in LEAVES and _unit(b) not in LEAVES]
    assert not bad


def test_imports_go_down_the_layers():
    bad = []
    for a, b, _name, line in IMPORTS:
        ua, ub = _unit(a), _unit(b)
        if ua == ub or ub in LEAVES or ua in LEAVES or (a, b) in KNOWN_EXCEPTIONS or _metadata(b, _name):
            continue
        if RANK[ub] >= RANK[ua]:
            bad.append(f"{a}:{line} imports {b} ({ua} is not above {ub})")
    assert not bad, "\n".join(bad)


def test_no_cycle_between_units():
    units = sorted(set(RANK) | LEAVES)
    pos = {u: i for i, u in enumerate(units)}
    edges = {(pos[_unit(a)], pos[_unit(b)]) for a, b, name, _ in IMPORTS
             if _unit(a) != _unit(b) and (a, b) not in KNOWN_EXCEPTIONS and not _metadata(b, name)}
    rows, cols = zip(*edges)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(units),) * 2)
    n, labels = connected_components(graph, directed=True, connection="strong")
    cycles = [[u for u in units if labels[pos[u]] == c] for c in range(n) if np.sum(labels == c) > 1]
    assert not cycles


def test_no_private_name_crosses_units():
    bad = []
    for a, b, name, line in IMPORTS:
        if _unit(a) == _unit(b) or (a, b) in KNOWN_EXCEPTIONS or _metadata(b, name):
            continue
        private_module = any(part.startswith("_") and part not in LEAVES and part != "__init__"
                             for part in b.split(".")[1:])
        if name.startswith("_") or private_module:
            bad.append(f"{a}:{line} imports {b}{'.' + name if name else ''}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source,expected", [
    ("from ..select import n_kept", ("topodata.select", "n_kept")),
    ("from .. import _validation as V", ("topodata._validation", "")),
    ("from .graphs import model_graphs", ("topodata.weights.graphs", "model_graphs")),
])
def test_relative_imports_resolve(tmp_path, monkeypatch, source, expected):
    # the resolver is what the layering tests stand on: check it on a module placed in weights/
    path = ROOT / "weights" / "pruning.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == path else _read(self))
    found = [(b, n) for a, b, n, _ in imports() if a == "topodata.weights.pruning"]
    assert found == [expected]


_read = Path.read_text
