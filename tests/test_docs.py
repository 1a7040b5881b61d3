"""The documentation ships with the code: every link resolves inside the repository.

Checks the markdown links of README.md and docs/*.md (file and heading anchor), every
``docs/<page>.md#<anchor>`` reference written in the code, and that nothing points to notes kept
outside the repository.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# folders that are not part of the repository's own text (environments, caches, outputs)
SKIP_DIRS = {".git", ".venv", "venv", ".cache", "__pycache__", ".pytest_cache", "node_modules"}
# ignored only at the repository root (.gitignore's /runs/, /data/, ...): topodata/data/ is code
ROOT_ONLY_SKIP = {"runs", "build", "dist", "data", "results"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".json"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_DOC_REF = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")


def _repo_text_files() -> list[Path]:
    out = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                   and not (Path(root) == REPO and d in ROOT_ONLY_SKIP)]
        out += [Path(root) / f for f in files
                if Path(f).suffix in TEXT_SUFFIXES or f in ("Makefile", "run")]
    return out


def _prose_lines(text: str) -> list[str]:
    """The lines of a markdown page outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of a markdown page, duplicates numbered as GitHub does (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def _links(page: Path) -> list[str]:
    found = []
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        found += [m.group(2) for m in _LINK.finditer(_CODE_SPAN.sub("", line))]
    return found


def _check_target(source: Path, target: str) -> str | None:
    """None when ``target`` (relative to ``source``'s folder) names a file, and heading, in the repo."""
    path_part, _, anchor = target.partition("#")
    dest = (source.parent / path_part).resolve() if path_part else source
    if not dest.is_relative_to(REPO):
        return f"{target}: outside the repository"
    if not dest.exists():
        return f"{target}: no such file"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}"
    return None


def test_slug_follows_github():
    assert slug("The kNN contract") == "the-knn-contract"
    assert slug("TopoPrune: choices and why") == "topoprune-choices-and-why"
    assert slug("`topodata select`: inputs") == "topodata-select-inputs"
    assert slug("Persistence core (`python scripts/bench_persistence.py`)") == (
        "persistence-core-python-scriptsbench_persistencepy")


def test_anchor_finder_skips_code_and_numbers_duplicates(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A\n```\n# not a heading\n```\n## A\n### B c\n", encoding="utf-8")
    assert anchors(page) == {"a", "a-1", "b-c"}


def test_check_target_fails_on_broken_links(tmp_path):
    assert _check_target(REPO / "README.md", "docs/design.md#the-knn-contract") is None
    assert "no heading" in _check_target(REPO / "README.md", "docs/design.md#no-such-section")
    assert "no such file" in _check_target(REPO / "README.md", "docs/nothing.md")
    assert "outside" in _check_target(REPO / "README.md", "../elsewhere.md")


def test_docs_pages_exist():
    names = {p.name for p in PAGES}
    assert {"design.md", "algorithms.md", "results.md", "weights.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not checked here
            continue
        problem = _check_target(page, target)
        if problem:
            broken.append(problem)
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_docs_references_in_code_resolve():
    """``docs/algorithms.md#global-manifold`` written anywhere in the repository names a real section."""
    broken, n_refs = [], 0
    for path in _repo_text_files():
        if path == Path(__file__).resolve():  # its own deliberately broken examples
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in _DOC_REF.finditer(text):
            n_refs += 1
            target = "docs/" + m.group(1) + (f"#{m.group(2)}" if m.group(2) else "")
            problem = _check_target(REPO / "README.md", target)  # docs/ is relative to the root
            if problem:
                broken.append(f"{path.relative_to(REPO)}: {problem}")
    assert n_refs > 0
    assert not broken, "\n".join(broken)


def test_no_reference_to_notes_outside_the_repository():
    """Code and docs cite docs/, never design notes that are not shipped."""
    # spelled in two pieces so that this file does not match itself
    forbidden = re.compile("DESIG" + r"N\.md|STY" + r"LE\.md|(?i:house" + r"\s+rules?)")
    hits = []
    for path in _repo_text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if forbidden.search(line):
                hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:80]}")
    assert not hits, "\n".join(hits)


def test_make_test_runs_the_docstring_examples():
    """``make test`` is plain ``pytest``; the configuration must collect topodata/'s ``>>>`` examples."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in cfg["addopts"].split()
    assert {"tests", "topodata"} <= set(cfg["testpaths"])
    make = (REPO / "Makefile").read_text(encoding="utf-8")
    test_recipe = make.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pytest" in test_recipe and "--ignore" not in test_recipe and "-p no:doctest" not in test_recipe


BENCH_SCRIPTS = sorted(p for p in (REPO / "scripts").glob("*.py") if p.name != "_bench.py"
                       and re.search(r"\b(parse_hyp|hyp_parser)\(", p.read_text(encoding="utf-8")))


@pytest.mark.parametrize("script", BENCH_SCRIPTS, ids=lambda p: p.name)
def test_bench_script_help_explains_every_option(script):
    """``--help`` of a benchmark script says what each option is, not only its default (the comment
    on the option's line of the script's ``hyp`` block)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=REPO, check=True).stdout
    options = re.findall(r"^\s+(--[\w-]+)", out, flags=re.M)
    bare = re.findall(r"^\s+(--[\w-]+)(?: [A-Z_]+)?\s+default: ", out, flags=re.M)
    assert len(options) > 1 and not bare, f"options with no explanation: {bare}"
