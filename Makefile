# The two commands a newcomer needs:  make demo  (build the demo map)  and  make test.
# Both install what they need first, idempotently: Debian packages, .venv, node_modules.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 8
PORT ?= 8000

# make report: the curator's report of the same run (README "Curating with the report").
.PHONY: demo report test serve setup system-deps python-deps node-deps bench clean

demo: setup
	$(BIN)/snakemake --cores $(CORES) tiles
	@echo
	@echo "Map ready in results/site (tiles in results/tiles)."
	@echo "Serve it with 'make serve' and open http://127.0.0.1:$(PORT)/site/"

report: setup
	$(BIN)/snakemake --cores $(CORES) report_figures
	$(BIN)/snakemake --report results/report.html
	@echo "Report ready: open results/report.html in a browser (no server needed)."

# The tests need more than the demo: Chromium for the viewer, a one-node SLURM for the profile,
# the Debian packages of the real-image set (bench/realset.py).
# (the SLURM daemons are started and stopped by tests/test_slurm.py itself).
test: setup
	@bash tools/install-system-deps.sh test
	@bash tools/slurm-test-cluster.sh install
	VACANCY_REQUIRE_BROWSER=1 VACANCY_REQUIRE_SLURM=1 VACANCY_REQUIRE_REALSET=1 $(BIN)/pytest -q

serve:
	@echo "Serving results/ at http://127.0.0.1:$(PORT)/site/ (Ctrl-C to stop)"
	$(BIN)/python -m vacancy.serve --directory results --port $(PORT)

bench: setup
	$(BIN)/python bench/scale.py --images 2000 --original 200 --flas

setup: system-deps python-deps node-deps

system-deps:
	@bash tools/install-system-deps.sh

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

clean:
	rm -rf results .snakemake
