# kd_det — the two commands:
#   make demo   set up .venv, make the digits data, train teacher / student / distilled student
#               on the CPU, evaluate all three with COCO mAP and export the student
#   make test   set up .venv, lint, and run the default (fast) test suite
# Both run scripts/setup.sh first (idempotent: seconds once the environment exists).

PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup data demo demo-full test test-slow test-build lint format benchmark theory

setup:
	@bash scripts/setup.sh

data: setup
	$(PY) tools/make_digits.py --out data/digits

demo: setup
	$(PY) tools/demo.py

demo-full: setup
	$(PY) tools/demo.py --full

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: lint
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

test-build: setup
	$(PY) -m pytest -q -m build tests/test_setup.py

benchmark: setup
	$(PY) tools/benchmark.py configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py

theory: setup
	$(PY) tools/theory/run_claims.py --out outputs/theory
