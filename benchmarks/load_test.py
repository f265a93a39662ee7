"""Loopback load test of the scoring service against the bare Predictor in-process (the clients use aiohttp:
httpx's pure-Python client cost more CPU than the service on these 2 cores and capped the rate at 40/s).

    python benchmarks/load_test.py --model models/m13_rank     # also run by benchmarks/run.py (make bench)

The service (python -m thinkcount serve) runs in its own process on a free loopback port. Closed loops of
1, 8 and 64 clients each send one prompt a request until a bounded number of requests is done: throughput,
p50 and p99 latency, failed requests. An open loop then sends Poisson arrivals at half the 64-client
throughput and reports p99 latency over five arrival sequences (the median one, and each). The 64 clients and
the open loop again with each request scored alone (--max-batch 1), with every queue batched (--batch-from 1,
--max-wait-ms 5) and with one worker (--workers 1) say what the defaults (batching once 8 requests wait, two
workers) buy and cost. The reference is Predictor.predict in this process on the same prompts at its best batch
size, called with that many prompts at a time, in passes run between the 64-client runs (and, for comparison,
once on the whole list, and from two threads). Targets on 2 cores: 64 clients reach 80% of the in-process rate;
p99 under 100 ms at half load."""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinkcount.serve.predict import Predictor  # noqa: E402

CLIENTS = (1, 8, 64)
REQUESTS = {1: 300, 8: 800, 64: 2000}  # per closed-loop run; each run also stops after 60 s
OPEN_LOOP_REQUESTS = 600
OPEN_LOOP_SEQUENCES = 5  # arrival sequences (seeds 0-4); the result is the one with the median p99
REPEATS = 3  # each rate is the median of this many runs: one run on 2 shared cores varies by about 10%
VARIANTS = {"alone": ["--max-batch", "1"],  # the service's other settings, measured at 64 clients and half load
            "always_batched": ["--batch-from", "1", "--max-wait-ms", "5"],
            "one_worker": ["--workers", "1"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """python -m thinkcount serve in a subprocess, ready once /healthz answers."""

    def __init__(self, model, *args):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "thinkcount", "serve", "--model", str(model), "--port",
                                      self.url.rsplit(":", 1)[1], *args], env=env, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise SystemExit(self.proc.stderr.read().decode())
                time.sleep(0.2)
        raise SystemExit("the service did not start within 120 s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(30)


async def closed_loop(url, prompts, clients, total, limit_s=60):
    """clients workers, each sending the next prompt as soon as its last answer came, until total are done."""
    latencies, failures, sent = [], 0, 0
    deadline = time.perf_counter() + limit_s

    async def worker(session):
        nonlocal failures, sent
        while sent < total and time.perf_counter() < deadline:
            prompt = prompts[sent % len(prompts)]
            sent += 1
            start = time.perf_counter()
            failures += not await post(session, f"{url}/score", prompt)
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        start = time.perf_counter()
        await asyncio.gather(*[worker(session) for _ in range(clients)])
        elapsed = time.perf_counter() - start
    return result(latencies, failures, elapsed)


async def post(session, url, prompt):
    """Whether one /score request for prompt succeeded."""
    try:
        async with session.post(url, json={"prompts": [prompt]}) as reply:
            await reply.read()
            return reply.status == 200
    except aiohttp.ClientError:
        return False


async def open_loop(url, prompts, rate, total, seed=0):
    """Poisson arrivals at `rate` requests/s, each its own task: latency as a client sees it under that load."""
    gaps = np.random.default_rng(seed).exponential(1 / rate, total)
    latencies, failures = [], 0

    async def one(session, prompt):
        nonlocal failures
        start = time.perf_counter()
        failures += not await post(session, f"{url}/score", prompt)
        latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        tasks, start = [], time.perf_counter()
        for i, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            tasks.append(asyncio.create_task(one(session, prompts[i % len(prompts)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {**result(latencies, failures, elapsed), "offered_per_second": rate}


def median_of(runs, key="prompts_per_second"):
    """The run with the median `key` (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def median_run(run):
    """The run with the median rate of REPEATS runs of run()."""
    return median_of([run() for _ in range(REPEATS)])


def result(latencies, failures, elapsed):
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "failed": failures, "prompts_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def in_process(model, prompts):
    """Predictor.predict's rates in this process on the same prompts: called with batch_size prompts at a time
    (what a caller holding that many prompts gets), once with all of them (length-sorted over the whole list: a
    bound no service that receives prompts one request at a time can reach), and from two threads at once with
    one ONNX Runtime thread each (what the service's two workers do). Returns the figures and a function for
    one pass at the best batch size, which measure() runs between the service's 64-client runs."""
    predictor = Predictor.load(model, device="cpu")
    predictor.predict(prompts[:64])  # warm-up

    def one_pass(call_size, batch_size):
        start = time.perf_counter()
        for i in range(0, len(prompts), call_size):
            predictor.predict(prompts[i:i + call_size], batch_size)
        return len(prompts) / (time.perf_counter() - start)

    def rate(call_size, batch_size):
        return float(np.median([one_pass(call_size, batch_size) for _ in range(REPEATS)]))

    sizes = (1, 8, 16, 32, 64)
    rates = {b: rate(b, b) for b in sizes}
    whole = {b: rate(len(prompts), b) for b in sizes}
    best, best_whole = max(rates, key=rates.get), max(whole, key=whole.get)
    figures = {"best_batch_size": best, "by_batch_size": {b: round(r, 1) for b, r in rates.items()},
               "whole_list": {"best_batch_size": best_whole, "prompts_per_second": round(whole[best_whole], 1)},
               "two_threads": {"batch_size": best, "prompts_per_second": round(two_threads(model, prompts, best), 1)}}
    return figures, lambda: one_pass(best, best)


def two_threads(model, prompts, batch_size):
    """Median prompts/s of two threads calling predict at once, batch_size prompts a call, one ONNX Runtime
    thread each, on one model."""
    first = Predictor.load(model, device="cpu", threads=1)
    predictors = [first, first.replica()]
    first.predict(prompts[:64])
    calls = [prompts[i:i + batch_size] for i in range(0, len(prompts), batch_size)]

    def one_pass():
        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda half: [predictors[half].predict(c, batch_size) for c in calls[half::2]], (0, 1)))
        return len(prompts) / (time.perf_counter() - start)
    return float(np.median([one_pass() for _ in range(REPEATS)]))


def open_loops(url, prompts, rate):
    """Poisson arrivals at rate over OPEN_LOOP_SEQUENCES arrival sequences: the median sequence by p99, and each
    sequence's p99 (the tail depends on the bursts one sequence happens to hold)."""
    runs = [asyncio.run(open_loop(url, prompts, rate, OPEN_LOOP_REQUESTS, seed))
            for seed in range(OPEN_LOOP_SEQUENCES)]
    median = median_of(runs, "p99_ms")
    return {**median, "p99_ms_by_sequence": [r["p99_ms"] for r in runs]}


def measure_variant(model, prompts, args, rate):
    """64 clients and the open loop at `rate` against the service started with args."""
    with Service(model, *args) as service:
        asyncio.run(closed_loop(service.url, prompts, 8, 100))  # warm-up
        return {"args": " ".join(args),
                "closed_loop_64": median_run(lambda: asyncio.run(closed_loop(service.url, prompts, 64, REQUESTS[64]))),
                "open_loop_half_saturation": open_loops(service.url, prompts, rate)}


def alongside(url, prompts, reference_pass):
    """The median of REPEATS 64-client runs, and the median in-process rate of passes run between them: the
    speed of these shared cores drifts by 10-20% over minutes, and the ratio should compare like with like."""
    runs, reference = [], []
    for _ in range(REPEATS):
        reference.append(reference_pass())
        runs.append(asyncio.run(closed_loop(url, prompts, 64, REQUESTS[64])))
    return median_of(runs), float(np.median(reference))


def measure(model, prompts):
    reference, reference_pass = in_process(model, prompts)
    out = {"in_process": reference, "closed_loop": {}}
    with Service(model) as service:
        asyncio.run(closed_loop(service.url, prompts, 8, 100))  # warm-up
        for clients in CLIENTS[:-1]:
            out["closed_loop"][clients] = median_run(
                lambda: asyncio.run(closed_loop(service.url, prompts, clients, REQUESTS[clients])))
        out["closed_loop"][64], reference_rate = alongside(service.url, prompts, reference_pass)
        reference["prompts_per_second"] = round(reference_rate, 1)
        half = out["closed_loop"][64]["prompts_per_second"] / 2
        out["open_loop_half_saturation"] = open_loops(service.url, prompts, half)
    out["variants"] = {name: measure_variant(model, prompts, args, half) for name, args in VARIANTS.items()}
    rate = out["closed_loop"][64]["prompts_per_second"]
    out["service_64_over_in_process"] = round(rate / reference["prompts_per_second"], 3)
    out["service_64_over_whole_list"] = round(rate / reference["whole_list"]["prompts_per_second"], 3)
    out["service_64_over_two_threads"] = round(rate / reference["two_threads"]["prompts_per_second"], 3)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompts", help="JSONL with instruction or text per line, the first 512 used (default: "
                        "512 generated prompts)")
    parser.add_argument("--output", help="also write the results here as JSON")
    args = parser.parse_args()
    if args.prompts:
        rows = [json.loads(line) for line in open(args.prompts, encoding="utf-8")][:512]
        prompts = [row.get("instruction") or row["text"] for row in rows]
    else:
        prompts = [f"Explain step {i} of how vaccines train the immune system, briefly." if i % 3 else
                   f"List {i % 7 + 2} fruits." for i in range(512)]
    results = {"model": args.model, **measure(args.model, prompts)}
    text = json.dumps(results, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
