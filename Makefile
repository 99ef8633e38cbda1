VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unitscope demo --out demo-out

test: $(STAMP)
	bash scripts/ensure-chromium
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m mypy
	UNITSCOPE_REQUIRE_BROWSER=1 $(PY) -m pytest

bench: $(STAMP)
	for b in bench/dissect.py bench/occlusion.py bench/minimal.py bench/render.py bench/stats.py bench/errors.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf demo-out
