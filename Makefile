# The two set-up commands: `make run` (whole pipeline) and `make test` (test suite).
# Both create .venv and install requirements.txt on first use.
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test ci-repro bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest -q

# The CI profile: the whole pipeline on a small corpus with a 2-layer MiniLM in a scratch copy
# (.ci-work), then the regression gate against the committed floors.
ci-repro: $(STAMP)
	python -m thinkcount.ciprofile .ci-work
	cd .ci-work && dvc repro
	python -m thinkcount.gate .ci-work/metrics/eval metrics/ci_floor.json

bench: $(STAMP)
	python benchmarks/run.py

clean-venv:
	rm -rf $(VENV)
