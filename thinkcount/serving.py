"""What a ranking is worth to a router: one server, test prompts arriving as a Poisson process, served
first-come-first-served or shortest-predicted-first, service time proportional to the trace's length.

Learning-to-rank schedulers for LLM serving report their gains this way: mean and p90 latency (waiting
plus service) relative to first-come-first-served on the same arrivals."""
import heapq

import numpy as np


def arrivals(service, load, rng):
    """Poisson arrival times at `load` utilisation of one server, for prompts in a random order."""
    order = rng.permutation(len(service))
    gaps = rng.exponential(service.mean() / load, len(service))
    return order, np.cumsum(gaps)


def latencies(service, times, priority):
    """Non-preemptive single server: when it frees up, it serves the waiting job of lowest priority value.

    service, priority: per job in arrival order; times: arrival times (increasing)."""
    done, waiting, clock, i, n = np.zeros(len(service)), [], 0.0, 0, len(service)
    while i < n or waiting:
        if not waiting and times[i] > clock:
            clock = times[i]
        while i < n and times[i] <= clock:
            heapq.heappush(waiting, (priority[i], i))
            i += 1
        _, job = heapq.heappop(waiting)
        clock += service[job]
        done[job] = clock
    return done - times


def serving_gains(service, scores, load=0.9, repeats=20, seed=0):
    """{name: {"mean": ratio, "p90": ratio}}: each score's shortest-predicted-first latency relative to
    first-come-first-served, averaged over `repeats` arrival sequences (the same ones for every score)."""
    service = np.asarray(service, dtype=float)
    rng = np.random.default_rng(seed)
    totals = {name: {"mean": 0.0, "p90": 0.0} for name in scores}
    for _ in range(repeats):
        order, times = arrivals(service, load, rng)
        fcfs = latencies(service[order], times, np.arange(len(order)))
        for name, score in scores.items():
            shortest_first = latencies(service[order], times, np.asarray(score, dtype=float)[order])
            totals[name]["mean"] += shortest_first.mean() / fcfs.mean() / repeats
            totals[name]["p90"] += np.percentile(shortest_first, 90) / np.percentile(fcfs, 90) / repeats
    return totals
