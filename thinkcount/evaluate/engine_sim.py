"""What a ranking is worth to an LLM engine with continuous batching: a serving model, and a sweep over load.

Requests (the test prompts) arrive as a Poisson process. At the end of every step the engine admits waiting
requests in the policy's order (first come first served, shortest predicted first by a score, or shortest
true output first) while its batch holds fewer than max_batch requests and its KV cache can reserve each
one's prompt and output tokens. A request that does not fit waits, and so does everything behind it: no
request overtakes a blocked one, so a long request is never starved of room. A step takes step_ms, plus
decode_ms_per_seq per running request, plus prefill_ms_per_token per prompt token admitted in it; every
running request produces one output token per step and leaves with its last one.

Latency is finish minus arrival, the wait admission minus arrival. Head-of-line blocking appears only when
the batch is full and requests queue, so ordering pays off at high load and barely at low load.

The engine changes state only when it admits a request or one leaves, so the loop jumps from one such step
to the next in closed form, about two events per request. A simulation library (SimPy) would add a
process per request and an event per jump, and nothing this model needs.
"""
import heapq
import math
from dataclasses import dataclass, replace

import numpy as np

METRICS = ("mean", "p90", "p99", "max_wait")


@dataclass(frozen=True)
class Engine:
    max_batch: int = 32                # requests decoded together at most
    kv_tokens: int = 65536             # KV-cache tokens; each running request reserves prompt + output
    step_ms: float = 10.0              # a step's fixed time
    decode_ms_per_seq: float = 0.25    # ... plus this per running request
    prefill_ms_per_token: float = 0.02  # ... plus this per prompt token admitted in the step

    def step_seconds(self, running, prefill_tokens=0):
        return (self.step_ms + self.decode_ms_per_seq * running + self.prefill_ms_per_token * prefill_tokens) / 1000

    def capacity(self, prompt, output):
        """Requests per second the engine completes when full: the concurrency the batch and the KV cache
        allow, one token each per step, over the mean output length (prefill left out)."""
        concurrency = min(self.max_batch, self.kv_tokens / np.mean(prompt + output))
        return concurrency / (self.step_seconds(concurrency) * np.mean(output))


def fitted(engine, output, single_step_s, burst_s):
    """engine with its step time a + b per running request fitted to two measurements of a real engine: the decode
    step of one request alone (a + b) and the makespan of a burst (these outputs, all arriving at once, in order).
    b stays >= 0: where the two disagree, b = 0 and a alone matches the burst. Prefill is left as it is."""
    zeros = np.zeros(len(output))

    def makespan_ms(step_ms, per_seq_ms):
        trial = replace(engine, step_ms=step_ms, decode_ms_per_seq=per_seq_ms, prefill_ms_per_token=0.0)
        return simulate(trial, zeros, zeros, output, np.arange(len(output)))[1].max() * 1000
    steps, seq_steps = makespan_ms(1.0, 0.0), makespan_ms(0.0, 1.0)  # steps taken; running requests summed over them
    per_seq = (1000 * burst_s - 1000 * single_step_s * steps) / (seq_steps - steps) if seq_steps > steps else 0.0
    per_seq = max(per_seq, 0.0)
    return replace(engine, step_ms=(1000 * burst_s - per_seq * seq_steps) / steps, decode_ms_per_seq=per_seq)


def simulate(engine, arrival, prompt, output, key):
    """(start, finish) times per request. arrival: increasing times; prompt, output: tokens (every request
    fits the KV cache: prompt + output <= kv_tokens); key: admission order, lower first, ties by arrival."""
    n = len(arrival)
    start, finish = np.full(n, np.nan), np.full(n, np.nan)
    # Python numbers: the loop does scalar arithmetic, several times faster than on numpy scalars, same doubles.
    arrival, prompt, output, key = (np.asarray(v).tolist() for v in (arrival, prompt, output, key))
    need = [p + o for p, o in zip(prompt, output)]
    waiting, running, t, i, kv = [], {}, 0.0, 0, 0
    while i < n or waiting or running:
        while i < n and arrival[i] <= t:
            heapq.heappush(waiting, (key[i], arrival[i], i))
            i += 1
        prefill = 0
        while waiting and len(running) < engine.max_batch and kv + need[waiting[0][2]] <= engine.kv_tokens:
            j = heapq.heappop(waiting)[2]
            running[j], start[j], kv, prefill = output[j], t, kv + need[j], prefill + prompt[j]
        if not running:
            t = arrival[i]  # idle until the next request arrives
            continue
        first, rest = engine.step_seconds(len(running), prefill), engine.step_seconds(len(running))
        steps = min(running.values())  # until the next request leaves ...
        if not waiting and len(running) < engine.max_batch and i < n:  # ... or the step after the next arrival
            steps = min(steps, 1 + max(0, math.ceil((arrival[i] - t - first) / rest)))
        t += first + (steps - 1) * rest
        for j in list(running):
            running[j] -= steps
            if running[j] == 0:
                finish[j], kv = t, kv - need[j]
                del running[j]
    return start, finish


def summary(arrival, start, finish):
    latency = finish - arrival
    return {"mean": float(latency.mean()), "p90": float(np.percentile(latency, 90)),
            "p99": float(np.percentile(latency, 99)), "max_wait": float((start - arrival).max())}


def tokens(chars, chars_per_token):
    return np.maximum(1, np.ceil(np.asarray(chars, dtype=float) / chars_per_token)).astype(int)


def sweep(engine, prompt, output, scores, loads, repeats, seed):
    """For each load and policy, each metric's mean and 95% range over `repeats` arrival sequences, and its
    ratio to first come first served on the same sequences (the mean of the per-sequence ratios).

    prompt, output: tokens per test prompt; scores: {name: predicted effort per test prompt}. Policies: fcfs,
    true_lengths (the output length itself: the best any prediction can do), and each score. Output lengths
    are capped to fit the KV cache with their prompt."""
    prompt = np.asarray(prompt)
    output = np.minimum(np.asarray(output), engine.kv_tokens - prompt)
    if (output < 1).any():
        raise ValueError("a prompt is longer than the KV cache; raise serving.kv_tokens")
    policies = {"fcfs": None, "true_lengths": output, **{k: np.asarray(v, dtype=float) for k, v in scores.items()}}
    rng = np.random.default_rng(seed)
    out = {}
    for load in loads:
        runs = {name: [] for name in policies}
        for _ in range(repeats):
            order = rng.permutation(len(prompt))
            arrival = np.cumsum(rng.exponential(1 / (load * engine.capacity(prompt, output)), len(prompt)))
            for name, key in policies.items():
                ranks = np.arange(len(order)) if key is None else key[order]
                start, finish = simulate(engine, arrival, prompt[order], output[order], ranks)
                runs[name].append(summary(arrival, start, finish))
        out[load] = {name: aggregate(values, runs["fcfs"]) for name, values in runs.items()}
    return out


def aggregate(values, fcfs, metrics=METRICS):
    """Per metric: mean, 2.5% and 97.5% quantiles over the sequences, and the mean ratio to fcfs."""
    result = {}
    for metric in metrics:
        series = np.array([v[metric] for v in values])
        ratio = series / np.array([f[metric] for f in fcfs])
        result[metric] = {"mean": float(series.mean()), "low": float(np.percentile(series, 2.5)),
                          "high": float(np.percentile(series, 97.5)), "vs_fcfs": float(ratio.mean())}
    return result
