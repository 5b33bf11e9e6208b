# Two commands do all set-up on a fresh machine:
#   make demo   trains the headline model on the embedded shapes data -> runs/demo
#   make test   runs the test suite
# and for CI: make lint, make typecheck (mypy, zero errors), make docs (the site, strict,
# into site/), make release-check (wheel built, checked, installed alone into a clean venv,
# demo model trained an epoch).
# TORCH picks the torch wheel; the default is the CPU build this workplace keeps on disk.
# Elsewhere (a GPU machine) run e.g. `make demo TORCH=torch` to take your platform's build.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS_STAMP := $(VENV)/.installed-docs-release

DEMO_ARGS ?= --model ngvae --data shapes --size 32 --n 20000 --latent-dim 10 --epochs 30 \
	--batch-size 64 --lr 1e-3 --elbo meanfield --eval-examples 1000 --iw-samples 100 \
	--device auto

.PHONY: demo test lint typecheck docs release-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,mnist5k]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ppl-vae train $(DEMO_ARGS) --out runs/demo --overwrite
	@echo "report: runs/demo/report.md, figures: runs/demo/figures/"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check ppl_vae models guides tests examples benchmarks docs/hooks

# mypy checks the package as it is installed: models/ and guides/ are ppl_vae.models and
# ppl_vae.guides (pyproject's package-dir), so they are linked into a ppl_vae folder of links
# under build/ first; errors name those paths (ppl_vae/models/vae.py is models/vae.py).
TYPECHECK := build/typecheck
typecheck: $(STAMP)
	rm -rf $(TYPECHECK)/ppl_vae && mkdir -p $(TYPECHECK)/ppl_vae
	ln -s $(CURDIR)/ppl_vae/*.py $(CURDIR)/ppl_vae/py.typed $(TYPECHECK)/ppl_vae/
	for d in $(CURDIR)/ppl_vae/*/ $(CURDIR)/models $(CURDIR)/guides; do \
		ln -s $${d%/} $(TYPECHECK)/ppl_vae/; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml ppl_vae

$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[test,mnist5k,docs,release]"
	touch $(EXTRAS_STAMP)

docs: $(EXTRAS_STAMP)
	$(BIN)/mkdocs build --strict

release-check: $(EXTRAS_STAMP)
	PYTHON=$(PYTHON) TORCH="$(TORCH)" bash .ci/release_check

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf $(VENV) build dist site *.egg-info
