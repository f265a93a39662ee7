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

clean-venv:
	rm -rf $(VENV)
