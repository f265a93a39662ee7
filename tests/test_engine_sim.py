"""The continuous-batching serving model, on schedules worked out by hand."""
import numpy as np
import pytest

from thinkcount.evaluate.engine_sim import Engine, fitted, simulate, summary, sweep


def run(engine, arrival, prompt, output, key):
    start, finish = simulate(engine, np.array(arrival, dtype=float), np.array(prompt), np.array(output),
                             np.array(key, dtype=float))
    return np.round(start, 6).tolist(), np.round(finish, 6).tolist()


def test_one_request_takes_one_step_per_output_token_plus_its_prefill():
    assert run(Engine(step_ms=10, decode_ms_per_seq=0, prefill_ms_per_token=0), [0], [5], [3], [0]) == ([0], [0.03])
    # 10 + 5 x 1 ms for the first step (prefill of 5 tokens), then 2 steps of 10 ms
    assert run(Engine(step_ms=10, decode_ms_per_seq=0, prefill_ms_per_token=1), [0], [5], [3], [0]) == ([0], [0.035])


def test_with_one_slot_the_policy_decides_who_waits():
    engine = Engine(max_batch=1, step_ms=10, decode_ms_per_seq=0, prefill_ms_per_token=0)
    # A (3 tokens) and B (1 token) both arrive at 0. Shortest first: B 0-0.01, A 0.01-0.04.
    assert run(engine, [0, 0], [1, 1], [3, 1], [3, 1]) == ([0.01, 0], [0.04, 0.01])
    # First come first served: A 0-0.03, B 0.03-0.04.
    start, finish = run(engine, [0, 0], [1, 1], [3, 1], [0, 1])
    assert (start, finish) == ([0, 0.03], [0.03, 0.04])
    assert summary(np.zeros(2), np.array(start), np.array(finish)) == pytest.approx(
        {"mean": 0.035, "p90": 0.039, "p99": 0.0399, "max_wait": 0.03})


def test_a_request_joins_the_running_batch_at_the_next_step():
    # A (2 tokens) runs alone: 10 + 5 ms a step. B arrives at 0.012, joins when A's first step ends (0.015);
    # the shared step takes 10 + 2 x 5 = 20 ms, after which both are done (0.035).
    engine = Engine(max_batch=2, step_ms=10, decode_ms_per_seq=5, prefill_ms_per_token=0)
    assert run(engine, [0, 0.012], [1, 1], [2, 1], [0, 1]) == ([0, 0.015], [0.035, 0.035])


def test_a_request_the_cache_cannot_hold_blocks_those_behind_it():
    # KV cache of 10 tokens. A (2 + 6) runs; B (1 + 4) does not fit beside it, and C (1 + 1), which would,
    # waits behind B: no overtaking. A leaves at 0.06; B and C start; C leaves at 0.07, B at 0.10.
    engine = Engine(max_batch=4, kv_tokens=10, step_ms=10, decode_ms_per_seq=0, prefill_ms_per_token=0)
    assert run(engine, [0, 0, 0], [2, 1, 1], [6, 4, 1], [0, 1, 2]) == ([0, 0.06, 0.06], [0.06, 0.1, 0.07])


def test_capacity_is_the_full_batch_rate_over_the_mean_output():
    engine = Engine(max_batch=4, step_ms=10, decode_ms_per_seq=0, prefill_ms_per_token=0)
    assert engine.capacity(np.array([1, 1]), np.array([10, 30])) == pytest.approx(4 / (0.01 * 20))


def test_ordering_pays_at_high_load_and_barely_at_low_load():
    rng = np.random.default_rng(0)
    output = np.ceil(rng.lognormal(5, 1, 300)).astype(int)
    prompt = np.full(300, 20)
    result = sweep(Engine(max_batch=8), prompt, output, {"exact": output, "reversed": -output}, [0.3, 0.95], 4, 1)
    high, low = result[0.95], result[0.3]
    assert high["exact"]["mean"] == high["true_lengths"]["mean"]  # a perfect prediction is the true lengths
    assert high["true_lengths"]["mean"]["vs_fcfs"] < 0.9 < 1.1 < high["reversed"]["mean"]["vs_fcfs"]
    assert abs(1 - low["true_lengths"]["mean"]["vs_fcfs"]) < abs(1 - high["true_lengths"]["mean"]["vs_fcfs"])
    assert high["fcfs"]["mean"]["vs_fcfs"] == 1.0
    assert high["fcfs"]["mean"]["low"] <= high["fcfs"]["mean"]["mean"] <= high["fcfs"]["mean"]["high"]


def test_step_times_fitted_to_one_request_alone_and_a_burst():
    # Two requests of 10 tokens in a batch of 2: a burst is 10 steps with 2 running. One alone stepping in 1 ms
    # (a + b) and the burst taking 15 ms (10 (a + 2b)) give a = b = 0.5 ms.
    engine = fitted(Engine(max_batch=2, kv_tokens=1000), np.array([10, 10]), 0.001, 0.015)
    assert engine.step_ms == pytest.approx(0.5) and engine.decode_ms_per_seq == pytest.approx(0.5)
    # One slot: every step has one running, so only a + b is known; the burst's 20 steps in 40 ms give a = 2, b = 0.
    engine = fitted(Engine(max_batch=1, kv_tokens=1000), np.array([10, 10]), 0.001, 0.040)
    assert engine.step_ms == pytest.approx(2.0) and engine.decode_ms_per_seq == 0.0
    # A burst faster than one request alone allows would need b < 0: b stays 0 and a matches the burst.
    engine = fitted(Engine(max_batch=2, kv_tokens=1000), np.array([10, 10]), 0.002, 0.015)
    assert engine.step_ms == pytest.approx(1.5) and engine.decode_ms_per_seq == 0.0
