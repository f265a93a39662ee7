"""Replay prompts against an OpenAI-compatible endpoint (the proxy, or an engine directly) with their traces'
output lengths, at Poisson arrivals, and report the latency each request saw.

    python -m thinkcount replay --url http://127.0.0.1:8000 --model MODEL --input data/counts.jsonl \\
        --rate 2.0 --requests 600 --output reports/replay_priority.jsonl

Each line of --input has the prompt `text` and `trace_chars`, the length of the model's real output (the
pipeline's data/counts.jsonl has both). Each request asks for max_tokens = trace_chars / --chars-per-token
with `ignore_eos`, so a vLLM engine generates exactly as many tokens as the real trace: the same work, in the
same arrival order, whichever scheduling policy serves it. The output has one line per request (arrival,
latency, status, the proxy's priority header when there is one), then the summary is printed."""
import argparse
import asyncio
import json
import math
import time

import httpx
import numpy as np

from thinkcount import UserError
from thinkcount.core.jsonl import read_jsonl, write_jsonl


def read_requests(path, limit, chars_per_token):
    """(prompt, max_tokens) per line of path, at most limit of them."""
    requests = []
    for line_no, row in read_jsonl(path):
        text, chars = row.get("text"), row.get("trace_chars")
        if not isinstance(text, str) or not text.strip() or not isinstance(chars, int) or chars < 0:
            raise UserError(f"{path}, line {line_no}: needs `text` and a non-negative integer `trace_chars`.")
        requests.append((text, max(1, math.ceil(chars / chars_per_token))))
        if len(requests) == limit:
            break
    if not requests:
        raise UserError(f"{path}: no requests to replay.")
    return requests


async def replay(url, model, requests, rate, seed):
    """Send each request at its Poisson arrival time; return one record per request."""
    gaps = np.random.default_rng(seed).exponential(1 / rate, len(requests))
    records = [None] * len(requests)

    async def send(client, i, arrival, prompt, max_tokens):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "ignore_eos": True}
        start = time.perf_counter()
        try:
            reply = await client.post(f"{url.rstrip('/')}/v1/chat/completions", json=body)
            status, priority = reply.status_code, reply.headers.get("x-thinkcount-priority")
        except httpx.HTTPError as e:
            status, priority = f"{type(e).__name__}", None
        records[i] = {"request": i, "arrival_s": round(arrival, 4), "max_tokens": max_tokens, "status": status,
                      "latency_s": round(time.perf_counter() - start, 4),
                      "priority": None if priority is None else int(priority)}

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1024), timeout=None) as client:
        tasks, start = [], time.perf_counter()
        for i, ((prompt, max_tokens), arrival) in enumerate(zip(requests, np.cumsum(gaps))):
            await asyncio.sleep(max(0.0, arrival - (time.perf_counter() - start)))
            tasks.append(asyncio.create_task(send(client, i, arrival, prompt, max_tokens)))
        await asyncio.gather(*tasks)
    return records


def summarise(records):
    ok = np.array([r["latency_s"] for r in records if r["status"] == 200])
    return {"requests": len(records), "failed": len(records) - len(ok),
            "mean_s": round(float(ok.mean()), 4) if len(ok) else None,
            "p90_s": round(float(np.percentile(ok, 90)), 4) if len(ok) else None,
            "p99_s": round(float(np.percentile(ok, 99)), 4) if len(ok) else None}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount replay", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the proxy's (or the engine's) base URL")
    parser.add_argument("--model", required=True, help="the model name the engine serves")
    parser.add_argument("--input", required=True, help="JSONL with `text` and `trace_chars` per line")
    parser.add_argument("--rate", type=float, required=True, help="mean arrivals per second")
    parser.add_argument("--requests", type=int, default=600, help="the first N lines of --input are replayed")
    parser.add_argument("--chars-per-token", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrival gaps (the same for every policy)")
    parser.add_argument("--output", help="one JSON line per request (written whole, by rename)")
    run(parser.parse_args(argv))


def run(args):
    if args.rate <= 0 or args.requests < 1 or args.chars_per_token <= 0:
        raise UserError("--rate and --chars-per-token must be above 0 and --requests at least 1.")
    requests = read_requests(args.input, args.requests, args.chars_per_token)
    records = asyncio.run(replay(args.url, args.model, requests, args.rate, args.seed))
    if args.output:
        write_jsonl(args.output, records)
    print(json.dumps(summarise(records)))
