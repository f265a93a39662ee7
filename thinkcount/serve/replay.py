"""Replay prompts against an OpenAI-compatible endpoint (the proxy, or an engine directly) with their traces'
output lengths, at Poisson arrivals, and report the latency each request saw.

    python -m thinkcount replay --url http://127.0.0.1:8000 --model MODEL --input data/counts.jsonl \\
        --rate 2.0 --requests 600 --output reports/replay_priority.jsonl

Each line of --input has the prompt `text` and `trace_chars`, the length of the model's real output (the
pipeline's data/counts.jsonl has both), and `model` where --model-field asks for each line's own. Each request
asks for max_tokens = trace_chars / --chars-per-token x --scale with `ignore_eos`, so a vLLM engine generates
exactly as many tokens as the real trace (scaled): the same work, in the same arrival order, whichever scheduling
policy serves it. Answers are streamed: the time to the first chunk is each request's wait plus its prefill, and
the engine's usage chunk gives its prompt and completion tokens. --oracle sets each request's `priority` to its
own max_tokens (sent straight to a priority engine: shortest true output first, the best any prediction can do).
The output has one line per request (arrival, latency, time to first chunk, tokens, status, the proxy's priority
header when there is one), then the summary is printed."""
import argparse
import asyncio
import json
import math
import time
from dataclasses import dataclass

import httpx
import numpy as np

from thinkcount import UserError
from thinkcount.core.jsonl import read_jsonl, write_jsonl


@dataclass(frozen=True)
class Request:
    prompt: str
    max_tokens: int
    model: str
    priority: int = None  # sent as vLLM's `priority` when set (a proxy in between sets its own)


def output_tokens(chars, chars_per_token, scale=1.0):
    """The tokens a request asks for: its trace's characters over chars_per_token, times scale (at least 1)."""
    return max(1, math.ceil(chars / chars_per_token * scale))


def read_requests(path, limit, chars_per_token, model=None, scale=1.0, oracle=False):
    """Requests of the lines of path, at most limit of them; model None: each line's own `model`; oracle: each
    request's priority is its own output tokens."""
    requests = []
    for line_no, row in read_jsonl(path):
        text, chars, name = row.get("text"), row.get("trace_chars"), model or row.get("model")
        if not isinstance(text, str) or not text.strip() or not isinstance(chars, int) or chars < 0:
            raise UserError(f"{path}, line {line_no}: needs `text` and a non-negative integer `trace_chars`.")
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}, line {line_no}: --model-field needs a non-empty `model` on every line.")
        tokens = output_tokens(chars, chars_per_token, scale)
        requests.append(Request(text, tokens, name, tokens if oracle else None))
        if len(requests) == limit:
            break
    if not requests:
        raise UserError(f"{path}: no requests to replay.")
    return requests


def arrivals(n, rate, seed):
    """Poisson arrival times in seconds from the start: the same for every policy given the seed."""
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate, n))


async def streamed(client, url, body):
    """(status, headers, seconds to the first chunk, the usage chunk's usage or None) of one streamed request."""
    start, first, last = time.perf_counter(), None, None
    async with client.stream("POST", url, json=body) as reply:
        async for line in reply.aiter_lines():
            if first is None:
                first = time.perf_counter() - start
            if line.startswith("data: ") and line != "data: [DONE]":
                last = line
    usage = None
    if reply.status_code == 200 and last is not None:
        try:
            usage = json.loads(last[6:]).get("usage")
        except ValueError:
            usage = None
    return reply.status_code, reply.headers, first, usage


async def send(client, url, request):
    body = {"model": request.model, "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_tokens, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    if request.priority is not None:
        body["priority"] = request.priority
    start = time.perf_counter()
    try:
        status, headers, first, usage = await streamed(client, f"{url.rstrip('/')}/v1/chat/completions", body)
        priority = headers.get("x-thinkcount-priority", body.get("priority"))
    except httpx.HTTPError as e:
        status, headers, first, usage, priority = f"{type(e).__name__}", {}, None, None, None
    usage = usage if isinstance(usage, dict) else {}
    return {"latency_s": round(time.perf_counter() - start, 4), "status": status,
            "score": headers.get("x-thinkcount-score"),  # "unavailable": sent on unscored (fail-open)
            "ttft_s": None if first is None else round(first, 4), "max_tokens": request.max_tokens,
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "priority": None if priority is None else int(priority)}


async def replay(url, requests, times):
    """Send each request at its arrival time (seconds from the start); one record per request, in order."""
    async def at(client, i, arrival):
        await asyncio.sleep(max(0.0, arrival - (time.perf_counter() - start)))
        return {"request": i, "arrival_s": round(float(arrival), 4), **await send(client, url, requests[i])}

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1024), timeout=None) as client:
        start = time.perf_counter()
        return await asyncio.gather(*(at(client, i, t) for i, t in enumerate(times)))


def summarise(records):
    ok = np.array([r["latency_s"] for r in records if r["status"] == 200])
    return {"requests": len(records), "failed": len(records) - len(ok),
            "mean_s": round(float(ok.mean()), 4) if len(ok) else None,
            "p90_s": round(float(np.percentile(ok, 90)), 4) if len(ok) else None,
            "p99_s": round(float(np.percentile(ok, 99)), 4) if len(ok) else None}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount replay", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the proxy's (or the engine's) base URL")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="the model name every request gives")
    which.add_argument("--model-field", action="store_true", help="each request gives its line's `model`")
    parser.add_argument("--input", required=True, help="JSONL with `text` and `trace_chars` per line")
    parser.add_argument("--rate", type=float, required=True, help="mean arrivals per second")
    parser.add_argument("--requests", type=int, default=600, help="the first N lines of --input are replayed")
    parser.add_argument("--chars-per-token", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=1.0, help="output tokens are the trace's times this")
    parser.add_argument("--oracle", action="store_true", help="set `priority` to each request's own max_tokens")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrival gaps (the same for every policy)")
    parser.add_argument("--output", help="one JSON line per request (written whole, by rename)")
    run(parser.parse_args(argv))


def run(args):
    if args.rate <= 0 or args.requests < 1 or args.chars_per_token <= 0 or args.scale <= 0:
        raise UserError("--rate, --chars-per-token and --scale must be above 0 and --requests at least 1.")
    requests = read_requests(args.input, args.requests, args.chars_per_token, args.model, args.scale, args.oracle)
    records = asyncio.run(replay(args.url, requests, arrivals(len(requests), args.rate, args.seed)))
    if args.output:
        write_jsonl(args.output, records)
    print(json.dumps(summarise(records)))
