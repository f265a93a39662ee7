#!/usr/bin/env bash
# Wall times on a fresh clone, as CI and a new user see them: `.ci/run` (make test + make ci-repro),
# then `make run` (venv, install, dvc repro), then a second `dvc repro` that must do nothing.
# Per-stage wall times of the `make run` go to reports/stage_times.md.
# Usage: bash benchmarks/fresh_clone.sh [SCRATCH_DIR] [ci|run|all]   (all: about an hour on 2 cores)
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
scratch=${1:-$(mktemp -d)}
steps=${2:-all}
step() { local name=$1; shift; local start=$SECONDS; "$@" > "$scratch/$name.log" 2>&1; echo "$name: $((SECONDS - start)) s ($*)"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
if [[ $steps != run ]]; then git clone -q "$repo" "$scratch/ci" && (cd "$scratch/ci" && step ci bash .ci/run); fi
[[ $steps == ci ]] && exit 0
export THINKCOUNT_STAGE_TIMES="$scratch/stage_times.jsonl"
git clone -q "$repo" "$scratch/run" && cd "$scratch/run" && step run make run
unset THINKCOUNT_STAGE_TIMES
.venv/bin/python benchmarks/stage_times.py "$scratch/stage_times.jsonl" > "$repo/reports/stage_times.md"
step repro2 .venv/bin/dvc repro
grep -q "Data and pipelines are up to date" "$scratch/repro2.log" && echo "second repro: nothing to do"
