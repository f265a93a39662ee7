"""The real engine behind the proxy: vLLM's CPU build (make engine) serving a tiny Qwen2-style model of random weights.
Requests queued behind a long one come back in the proxy's priority order, a model-aware predictor is given the
request's model, and the proxy's streamed answer is the engine's byte for byte. Skipped where `make engine` has not
run, except under THINKCOUNT_REQUIRE_ENGINE=1 (CI), where a missing engine fails."""
import asyncio
import json
import os
import time

import httpx
import numpy as np
import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from conftest import model_aware_copy
from test_serve import in_thread, service
from thinkcount.methods import modelfolder
from thinkcount.ops.engine import EngineSettings, build_tiny_model, engine_python, running
from thinkcount.serve.adapt import write_folder
from thinkcount.serve.head import POOLED, AdaptedHead, Ridge
from thinkcount.serve.predict import Predictor
from thinkcount.serve.proxy import priority

pytestmark = pytest.mark.slow
SERVED = "tiny"  # the engine's model name (--served-model-name)
ALIAS = "r1"     # another name it answers to: a training name of the model-aware test's folder
PROMPTS = ["Name a color.", "Why is the sky blue? Explain step by step, with every detail."]


@pytest.fixture(scope="module")
def by_length(model_dir, tmp_path_factory):
    """The tiny model with an adapted head that predicts effort from the prompt's length alone, steeply: the proxy's
    priorities then follow the prompts' lengths, an order known without running it."""
    head = AdaptedHead("length", {POOLED: Ridge(coef=(2.0,), intercept=0.0, mean=(0.0,), scale=(1.0,))})
    out = tmp_path_factory.mktemp("length") / "by-length"
    write_folder(model_dir, out, head, {"test": "a head over the prompt's length"})
    return out


def engine_or_skip():
    try:
        engine_python(EngineSettings("x"))
    except Exception as e:  # the one-sentence UserError saying how to install it
        if os.environ.get("THINKCOUNT_REQUIRE_ENGINE") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The engine in priority mode, one sequence at a time: whatever waits is ordered by priority alone."""
    engine_or_skip()
    model = build_tiny_model(tmp_path_factory.mktemp("engine") / "tiny")
    # a second name, as a replay of many models' traces gives each request its own (benchmarks/engine_replay.py)
    # 16 tokens a chunk: the long request's stream, one chunk a token, kept vLLM's server from accepting the proxy's
    # connections for over 10 s in a fresh-clone CI run beside ci-repro
    settings = EngineSettings(str(model), policy="priority", max_num_seqs=1, served_names=(SERVED, ALIAS),
                              max_model_len=32768, stream_interval=16)
    with running(settings) as url:
        httpx.post(f"{url}/v1/chat/completions", json=chat("Warm up.", 2), timeout=120)  # the first call's set-up
        yield url


def chat(prompt, tokens, **extra):
    return {"model": SERVED, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "ignore_eos": True, "temperature": 0, **extra}


def gauge(engine, name):
    """One of the engine's Prometheus gauges, such as vllm:num_requests_waiting."""
    for line in httpx.get(f"{engine}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until(engine, name, value, tasks=()):
    """Whether the engine's gauge name reaches value before any task finishes and within 30 s."""
    deadline = time.monotonic() + 30
    while await asyncio.to_thread(gauge, engine, name) < value:
        if any(t.done() for t in tasks) or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def queued_behind_a_long_one(client, proxy, engine, prompts):
    """Send a long request straight to the engine, then prompts through the proxy while it runs; once all of them
    wait in the engine's queue, hang up the long one: the prompts in the order their answers complete, or None when
    the long one did not hold the slot until then (it runs 30,000 tokens, about 40 s: a loaded machine may be slower
    to queue the prompts)."""
    done = []

    async def one(prompt):
        reply = await client.post(f"{proxy}/v1/chat/completions", json=chat(prompt, 4))
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 4
        done.append(prompt)
    async with client.stream("POST", f"{engine}/v1/chat/completions",
                             json=chat("Hold the engine.", 30000, stream=True)) as long:
        assert long.status_code == 200, await long.aread()
        assert await until(engine, "vllm:num_requests_running", 1), "the long request did not start"
        tasks = [asyncio.create_task(one(p)) for p in prompts]
        held = await until(engine, "vllm:num_requests_waiting", len(prompts), tasks)
        # the gauge is sampled by vLLM's stat logger: give every request time to be queued for certain
        await asyncio.sleep(3)
        held = held and not any(t.done() for t in tasks) and await asyncio.to_thread(
            gauge, engine, "vllm:num_requests_running") >= 1
    # leaving the stream hangs up: the engine aborts the long request and frees its slot for the queue
    await asyncio.gather(*tasks)
    return done if held else None


async def finish_order(proxy, engine, prompts, attempts=3):
    """queued_behind_a_long_one, tried again where the long request did not hold the slot (never a wrong order)."""
    async with httpx.AsyncClient(timeout=120) as client:
        assert (await client.post(f"{proxy}/v1/chat/completions", json=chat("Warm up.", 1))).status_code == 200
        for _ in range(attempts):
            done = await queued_behind_a_long_one(client, proxy, engine, prompts)
            if done is not None:
                return done
    pytest.fail(f"in {attempts} attempts the long request never held the slot until every prompt was queued")


def test_requests_queued_behind_a_long_one_finish_in_the_proxy_s_priority_order(engine, by_length):
    prompts = ["Summarise the causes of the first world war in three paragraphs.", "Hi.", "Why is the sky blue?",
               "Name a color.", "Plan a week of meals for a family of four on a budget, with a shopping list."]
    levels = [priority(np.expm1(2 * np.log1p(len(p))), 0) for p in prompts]  # the head's prediction, by hand
    assert len(set(levels)) == len(prompts)
    # a score budget and a connect time-out the busy test machine always meets: a late score would serve at the
    # neutral priority, a late connection would be a 504
    with service(by_length, "--upstream", engine, "--aging-seconds", 3600, "--score-budget-ms", 30000,
                 "--connect-timeout", 120) as (url, _):
        done = asyncio.run(finish_order(url, engine, prompts))
    assert done == sorted(prompts, key=len)  # shortest predicted first: the shortest prompt


def test_a_model_aware_predictor_is_given_the_request_s_model(engine, model_dir, tmp_path):
    aware = model_aware_copy(model_dir, tmp_path / "aware")
    (aware / modelfolder.TRAINING_MODELS).write_text(json.dumps({"models": {"qwen3-8b": 40, "r1": 24}}))
    modelfolder.seal(aware, "m08_markers", modelfolder.read_label_config(aware / "label_config.json"))
    (tmp_path / "map.yaml").write_text(yaml.safe_dump({SERVED: "r1"}))
    expected = Predictor.load(aware).predict([PROMPTS[1]], model="r1")[0]["expected_counts"]
    with service(aware, "--upstream", engine, "--model-map", tmp_path / "map.yaml", "--aging-seconds", 3600) \
            as (url, _):
        reply = httpx.post(f"{url}/v1/chat/completions", json=chat(PROMPTS[1], 3), timeout=60)
        direct = httpx.post(f"{url}/v1/chat/completions", json={**chat(PROMPTS[1], 3), "model": ALIAS}, timeout=60)
    assert reply.status_code == 200 and reply.headers["x-thinkcount-model"] == "r1"
    assert int(reply.headers["x-thinkcount-priority"]) == priority(expected, 0)
    assert reply.json()["model"] == SERVED and reply.json()["usage"]["completion_tokens"] == 3
    # a request naming the training name needs no map, and the engine answers to that name too
    assert direct.status_code == 200 and direct.headers["x-thinkcount-model"] == "r1"
    assert int(direct.headers["x-thinkcount-priority"]) == priority(expected, 0)


def recorder(engine, seen):
    """A pass-through in front of the engine that keeps the bytes of each answer it relays."""
    async def relay(request):
        client = httpx.AsyncClient(timeout=60)
        upstream = await client.send(client.build_request(request.method, f"{engine}{request.url.path}",
                                                          content=await request.body(),
                                                          headers={"content-type": "application/json"}),
                                     stream=True)

        async def body():
            async for chunk in upstream.aiter_raw():
                seen.append(chunk)
                yield chunk
            await upstream.aclose()
            await client.aclose()
        return StreamingResponse(body(), status_code=upstream.status_code,
                                 media_type=upstream.headers.get("content-type"))
    return Starlette(routes=[Route("/v1/chat/completions", relay, methods=["POST"])])


def test_the_proxy_s_streamed_answer_is_the_engine_s_byte_for_byte(engine, model_dir):
    seen = []
    with in_thread(recorder(engine, seen)) as relay, \
            service(model_dir, "--upstream", relay, "--aging-seconds", 3600) as (url, _):
        got = b""
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat(PROMPTS[0], 16, stream=True),
                          timeout=60) as reply:
            assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
            for chunk in reply.iter_raw():
                got += chunk
        time.sleep(0.2)
    assert got == b"".join(seen) and got.endswith(b"data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in got.decode().splitlines() if line.startswith("data: {")]
    assert sum(1 for e in events if e["choices"] and e["choices"][0]["delta"].get("content")) >= 1
