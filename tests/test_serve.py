"""The scoring service and the priority proxy, started on a free loopback port and spoken to over HTTP; the
engine behind the proxy is a small ASGI app in this process that records what it receives."""
import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from conftest import ROOT, model_aware_copy, sealed_model
from thinkcount import UserError
from thinkcount.serve.batcher import MicroBatcher
from thinkcount.serve.predict import Predictor
from thinkcount.serve.proxy import PATHS, capped, priority
from thinkcount.serve.options import ServeConfig, parse_args

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
PROMPTS = ["Why is the sky blue? How does light scatter in the air?", "List three colors.",
           "Explain step by step how to solve 3x + 5 = 20, then check the answer.", "Hi"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def service(model, *args):
    """python -m thinkcount serve on a free port; yields (base URL, process) once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "thinkcount", "serve", "--model", str(model), "--port", str(port),
                             *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


SSE = [b'data: {"id":"c1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
       b'data: {"id":"c1","choices":[{"delta":{"content":"lo"}}]}\n\n', b"data: [DONE]\n\n"]


class Engine:
    """Stands in for vLLM: records each request body; streams SSE_CHUNKS when asked to stream."""

    def __init__(self, name):
        self.name, self.received = name, []

    async def complete(self, request):
        body = await request.json()
        self.received.append(body)
        if body.get("stream"):
            async def chunks():
                for chunk in SSE:
                    yield chunk
                    await asyncio.sleep(0.01)
            return StreamingResponse(chunks(), media_type="text/event-stream", headers={"x-engine": self.name})
        return JSONResponse({"engine": self.name, "id": "c1"}, headers={"x-engine": self.name})

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


@contextmanager
def in_thread(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def scoring(model_dir):
    options = ["--max-batch", 64, "--batch-from", 1, "--max-wait-ms", 50, "--max-prompts", 8, "--max-body-bytes", 4096]
    with service(model_dir, *options) as (url, _):
        yield url


def test_scores_equal_the_predictor_in_process(scoring, model_dir):
    reply = httpx.post(f"{scoring}/score", json={"prompts": PROMPTS[:2] + [{"instruction": "Explain rain.",
                                                                            "input": "It falls."}]})
    assert reply.status_code == 200
    expected = Predictor.load(model_dir).predict(PROMPTS[:2] + ["Explain rain.\n\nIt falls."])
    got = reply.json()["results"]
    assert [r["score"] for r in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert [r["label"] for r in got] == [e["label"] for e in expected]
    assert reply.json()["model"] == httpx.get(f"{scoring}/healthz").json()["version"]


BAD = [
    (b"{not json", 400, "the body is not valid JSON."),
    (b"[1, 2]", 400, "the body must be a JSON object."),
    (b"{}", 400, "`prompts` must be a non-empty list"),
    (b'{"prompts": []}', 400, "`prompts` must be a non-empty list"),
    (b'{"prompts": ["ok", 3]}', 400, "prompt 1 is empty, not a string"),
    (b'{"prompts": ["ok", "  "]}', 400, "prompt 1 is empty, not a string"),
    (b'{"prompts": [{"instruction": "x", "Input": "y"}]}', 400, "prompt 0 is empty, not a string"),
    (b'{"promts": ["ok"]}', 400, "unknown key 'promts'"),
    (b'{"prompts": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}', 413, "9 prompts in one request; at most 8."),
    (b'{"prompts": ["' + b"x" * 5000 + b'"]}', 413, "the body is over 4096 bytes."),
]


@pytest.mark.parametrize("body, status, message", BAD, ids=[m for _, _, m in BAD])
def test_a_bad_request_gets_its_status_and_one_sentence(scoring, body, status, message):
    reply = httpx.post(f"{scoring}/score", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status and reply.json()["error"].startswith(message)
    assert httpx.get(f"{scoring}/healthz").json()["status"] == "ok"  # nothing takes the process down


def metric(url, name):
    """The value of one sample line of /metrics, e.g. thinkcount_batch_size_count."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_concurrent_requests_are_scored_in_shared_batches(scoring):
    calls, prompts = metric(scoring, "thinkcount_batch_size_count"), metric(scoring, "thinkcount_batch_size_sum")

    async def clients():
        async with httpx.AsyncClient() as client:
            replies = await asyncio.gather(*[client.post(f"{scoring}/score", json={"prompts": [p]})
                                             for p in PROMPTS * 4])
        return [r.status_code for r in replies]
    assert asyncio.run(clients()) == [200] * 16
    new_calls = metric(scoring, "thinkcount_batch_size_count") - calls
    assert metric(scoring, "thinkcount_batch_size_sum") - prompts == 16 and new_calls < 16  # some batch held > 1
    text = httpx.get(f"{scoring}/metrics").text
    assert 'thinkcount_requests_total{endpoint="score",status="200"}' in text and "thinkcount_model_info{" in text


def batch_sizes(waiting, batch_from):
    """The batch sizes a MicroBatcher scores when `waiting` one-prompt requests queue behind one being scored."""
    sizes, release = [], threading.Event()

    def score(prompts, worker):
        sizes.append(len(prompts))
        release.wait(10)
        return [p.upper() for p in prompts]

    async def submit_all():
        batcher = MicroBatcher(score, max_batch=64, max_wait=0, batch_from=batch_from)
        batcher.start()
        first = asyncio.create_task(batcher.submit(["a"]))
        while not sizes:  # the model is busy with the first request
            await asyncio.sleep(0.01)
        others = [asyncio.create_task(batcher.submit([f"p{i}"])) for i in range(waiting)]
        await asyncio.sleep(0.05)  # every other request is in the queue
        release.set()
        results = await asyncio.gather(first, *others)
        await batcher.stop()
        return results
    assert asyncio.run(submit_all()) == [["A"]] + [[f"P{i}"] for i in range(waiting)]
    return sizes


def test_requests_are_batched_only_once_batch_from_of_them_wait():
    assert batch_sizes(3, batch_from=4) == [1, 1, 1, 1]  # a short queue: each scored alone, as it comes
    assert batch_sizes(4, batch_from=4) == [1, 4]
    assert batch_sizes(2, batch_from=1) == [1, 2]


def test_two_workers_score_two_batches_at_once():
    workers, both = [], threading.Barrier(2, timeout=10)

    def score(prompts, worker):
        workers.append(worker)
        both.wait()  # passes only once the other worker is scoring too; one worker alone breaks it
        return [p.upper() for p in prompts]

    async def submit_two():
        batcher = MicroBatcher(score, max_batch=64, max_wait=0, batch_from=8, workers=2)
        batcher.start()
        results = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
        await batcher.stop()
        return results
    assert asyncio.run(submit_two()) == [["A"], ["B"]]
    assert sorted(workers) == [0, 1]


@pytest.mark.parametrize("option, value, message", [("--batch-from", "0", "--batch-from must be at least 1."),
                                                    ("--workers", "0", "--workers must be at least 1."),
                                                    ("--max-wait-ms", "-1", "--max-wait-ms must be 0 or more."),
                                                    ("--threshold", "3", "--reasoning-upstream and --threshold go")])
def test_a_bad_service_option_is_refused_in_one_sentence(option, value, message):
    with pytest.raises(UserError, match=message):
        parse_args(["--model", "m", option, value])


def test_the_command_line_defaults_are_the_configs(monkeypatch):
    monkeypatch.delenv("THINKCOUNT_ADMIN_TOKEN", raising=False)
    assert parse_args(["--model", "m"]) == (ServeConfig("m"), "127.0.0.1", 8000)
    config, _, _ = parse_args(["--model", "m", "--fail-closed", "--adapt-every", "5", "--traffic-log", "l",
                               "--upstream", "u", "--abnormal-quantile", "p95"])
    assert (config.fail_closed, config.adapt_every, config.abnormal_quantile) == (True, 5, "p95")


def test_reload_serves_the_new_model_and_refuses_a_bad_folder(model_dir, tmp_path, params, tiny_encoders):
    ranker = sealed_model(tmp_path / "m13_rank", params, {"bert": tiny_encoders["bert"]}, name="m13_rank")
    broken = tmp_path / "broken"
    broken.mkdir()
    aware = model_aware_copy(model_dir, tmp_path / "aware")
    with service(model_dir) as (url, _):
        before = httpx.get(f"{url}/healthz").json()["version"]
        reply = httpx.post(f"{url}/reload", json={"model": str(broken)})
        assert reply.status_code == 422 and "no manifest.json" in reply.json()["error"]
        assert httpx.get(f"{url}/healthz").json()["version"] == before  # the old model serves on
        assert "probs" in httpx.post(f"{url}/score", json={"prompts": ["Why?"]}).json()["results"][0]
        assert httpx.post(f"{url}/reload", json={"model": str(aware)}).status_code == 200
        reply = httpx.post(f"{url}/score", json={"prompts": ["Why?"]})  # a model-aware model needs the model
        assert reply.status_code == 422 and "is not one the served model-aware model knows" in reply.json()["error"]
        reply = httpx.post(f"{url}/score", json={"prompts": ["Why?"], "model": "qwen3-8b"}).json()
        assert reply["answering_model"] == "qwen3-8b" and reply["results"][0]["score"] == pytest.approx(
            Predictor.load(aware).predict(["Why?"], model="qwen3-8b")[0]["score"], abs=1e-5)
        reply = httpx.post(f"{url}/reload", json={"model": str(ranker)})
        assert reply.status_code == 200 and reply.json()["version"] != before
        result = httpx.post(f"{url}/score", json={"prompts": ["Why?"]}).json()["results"][0]
        assert "probs" not in result  # the ranking model answers now
        assert result["score"] == pytest.approx(Predictor.load(ranker).predict(["Why?"])[0]["score"], abs=1e-5)


def test_sigterm_drains_the_request_in_flight_and_exits_0(model_dir):
    with service(model_dir, "--batch-from", 1, "--max-wait-ms", 5000) as (url, proc):  # waits 5 s for company
        replies = []
        thread = threading.Thread(target=lambda: replies.append(httpx.post(f"{url}/score", json={
            "prompts": ["Why?"]}, timeout=30)))
        thread.start()
        deadline = time.time() + 5  # a busy machine may be slow to send it; SIGTERM must find it in flight
        while metric(url, 'thinkcount_requests_in_flight{endpoint="score"}') != 1:
            assert time.time() < deadline, "the request was never in flight"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        assert proc.wait(30) == 0
        assert replies[0].status_code == 200 and len(replies[0].json()["results"]) == 1


# ---- the proxy ----
def test_priority_levels_and_aging_by_hand():
    assert [priority(c, 0) for c in (0.5, 1, math.e, 20, 150)] == [0, 0, 10, 30, 50]
    assert priority(20, 7) == 37
    # Aging: a request predicted at 150 counts (level 50) arriving at t=0 is overtaken by one predicted at 1
    # count (level 0) only while the newcomer's aging levels stay below 50: for 50 aging steps.
    assert priority(1, 49) < priority(150, 0) <= priority(1, 50)


def test_max_tokens_are_capped_by_the_prediction():
    assert capped({"max_tokens": 500}, 20, 5)["max_tokens"] == 100
    assert capped({"max_tokens": 50}, 20, 5)["max_tokens"] == 50
    assert capped({}, 2.2, 5)["max_tokens"] == 11
    assert capped({"max_completion_tokens": 500}, 20, 5) == {"max_completion_tokens": 100}


@pytest.fixture(scope="module")
def proxy(model_dir):
    predictor = Predictor.load(model_dir)  # each prompt alone, as the service scores one request: the same floats
    expected = {p: predictor.predict([p])[0]["expected_counts"] for p in PROMPTS}
    ordered = sorted(expected.values())
    threshold = (ordered[1] + ordered[2]) / 2  # the two prompts predicted longest go to the reasoning engine
    assert ordered[1] < ordered[2]
    default, reasoning = Engine("default"), Engine("reasoning")
    with in_thread(default.app()) as default_url, in_thread(reasoning.app()) as reasoning_url:
        with service(model_dir, "--upstream", default_url, "--reasoning-upstream", reasoning_url, "--threshold",
                     threshold, "--aging-seconds", 3600) as (url, _):
            yield url, default, reasoning, expected, threshold


def test_the_proxy_sets_priorities_by_predicted_effort_and_routes_by_threshold(proxy):
    url, default, reasoning, expected, threshold = proxy
    for prompt in PROMPTS:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]})
        assert reply.status_code == 200 and reply.headers["x-engine"] == reply.headers["x-thinkcount-upstream"]
        assert reply.json()["engine"] == ("reasoning" if expected[prompt] >= threshold else "default")
    sent = {body["messages"][-1]["content"]: body["priority"] for body in default.received + reasoning.received}
    assert sent == {p: priority(c, 0) for p, c in expected.items()}  # aging: 0 levels within the first hour
    by_effort = sorted(PROMPTS, key=expected.get)
    assert [sent[p] for p in by_effort] == sorted(sent.values())  # lower predicted effort, served first
    assert {b["messages"][-1]["content"] for b in reasoning.received} == {p for p in PROMPTS
                                                                         if expected[p] >= threshold}


def test_the_proxy_streams_the_answer_back_byte_for_byte(proxy):
    url = proxy[0]
    with httpx.stream("POST", f"{url}/v1/completions", json={"model": "m", "prompt": "Hi", "stream": True}) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        assert b"".join(reply.iter_raw()) == b"".join(SSE)
        assert int(reply.headers["x-thinkcount-priority"]) == priority(proxy[3]["Hi"], 0)


@pytest.mark.parametrize("path, body, message", [
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": "x"}]}, "`messages` has no user message"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "the last user message has no text"),
    ("/v1/completions", {"prompt": 3}, "`prompt` must be a non-empty string"),
])
def test_the_proxy_refuses_a_request_it_cannot_score(proxy, path, body, message):
    reply = httpx.post(f"{proxy[0]}{path}", json=body)
    assert reply.status_code == 400 and reply.json()["error"].startswith(message)


def test_an_unreachable_upstream_is_a_502_with_one_sentence(model_dir):
    with service(model_dir, "--upstream", f"http://127.0.0.1:{free_port()}") as (url, _):
        reply = httpx.post(f"{url}/v1/completions", json={"prompt": "Hi"})
        assert reply.status_code == 502 and "did not answer" in reply.json()["error"]


def test_the_replay_client_sends_each_trace_s_length_with_ignore_eos(proxy, tmp_path):
    from thinkcount.__main__ import main as cli
    url, default, reasoning = proxy[0], proxy[1], proxy[2]
    rows = [{"text": p, "trace_chars": chars} for p, chars in zip(PROMPTS, [10, 401, 4000, 0])]
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = len(default.received), len(reasoning.received)
    out = tmp_path / "replay.jsonl"
    assert cli(["replay", "--url", url, "--model", "m", "--input", str(tmp_path / "traces.jsonl"), "--rate", "50",
                "--output", str(out)]) == 0
    sent = default.received[before[0]:] + reasoning.received[before[1]:]
    by_prompt = {b["messages"][0]["content"]: b for b in sent}
    assert {p: b["max_tokens"] for p, b in by_prompt.items()} == dict(zip(PROMPTS, [3, 101, 1000, 1]))
    assert all(b["ignore_eos"] is True and "priority" in b for b in sent)
    records = [json.loads(line) for line in out.open()]
    assert [r["status"] for r in records] == [200] * 4
    assert [r["priority"] for r in records] == [priority(proxy[3][p], 0) for p in PROMPTS]
    assert all(b["stream"] is True for b in sent) and all(r["ttft_s"] is not None for r in records)


def test_the_oracle_replay_gives_each_line_s_model_and_its_scaled_length_as_priority(tmp_path):
    from thinkcount.__main__ import main as cli
    rows = [{"text": "Hi.", "trace_chars": 400, "model": "a"}, {"text": "Why?", "trace_chars": 41, "model": "b"}]
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    engine = Engine("direct")
    with in_thread(engine.app()) as url:
        assert cli(["replay", "--url", url, "--model-field", "--input", str(tmp_path / "traces.jsonl"), "--rate", "50",
                    "--scale", "0.5", "--oracle", "--output", str(tmp_path / "out.jsonl")]) == 0
    sent = {b["messages"][0]["content"]: (b["model"], b["max_tokens"], b["priority"]) for b in engine.received}
    assert sent == {"Hi.": ("a", 50, 50), "Why?": ("b", 6, 6)}  # ceil(400 / 4 x 0.5), ceil(41 / 4 x 0.5)
    assert [json.loads(line)["priority"] for line in (tmp_path / "out.jsonl").open()] == [50, 6]
