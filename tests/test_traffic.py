"""The traffic log: what the proxy reads on the side of each answer, one record per request, written so that a
kill loses at most the batch in hand; the drift figures and the abnormal-answer flag on traffic whose answer is
known."""
import asyncio
import csv
import json
import shutil
import signal
import time

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from conftest import ROOT, verb
from test_serve import in_thread, metric, service
from thinkcount.data.ingest import ingest_file
from thinkcount.data.records import compute_counts
from thinkcount.methods import modelfolder
from thinkcount.serve.drift import window_figures
from thinkcount.serve.predict import Predictor
from thinkcount.serve.proxy import PATHS
from thinkcount.data.counting import keyword_pattern, prompt_id
from thinkcount.serve.traffic import AnswerReader, Exchange, LogSettings, TrafficLog, log_record

SHARED = ROOT.parent / "shared" / "real_traces"
drift = verb("drift")


def sse(*deltas, finish="stop"):
    events = [{"choices": [{"delta": d, "finish_reason": None}]} for d in deltas]
    events.append({"choices": [{"delta": {}, "finish_reason": finish}],
                   "usage": {"completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 7}}})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def read(data, event_stream, cut=7):
    """An AnswerReader fed data in pieces of `cut` bytes, as a network would split it."""
    reader = AnswerReader(event_stream)
    for start in range(0, len(data), cut):
        reader.feed(data[start:start + cut])
    return reader.finish()


def test_a_streamed_answer_is_read_across_chunk_boundaries():
    reader = read(sse({"reasoning_content": "Hmm. "}, {"reasoning_content": "Wait, yes."}, {"content": "4"}), True)
    assert ("".join(reader.reasoning), "".join(reader.content), reader.finish_reason) == ("Hmm. Wait, yes.", "4",
                                                                                          "stop")
    assert (reader.completion_tokens, reader.reasoning_tokens) == (9, 7) and reader.first_token is not None


@pytest.mark.parametrize("body, reasoning, content", [
    ({"choices": [{"message": {"reasoning": "So. Wait.", "content": "x"}, "finish_reason": "length"}]},
     "So. Wait.", "x"),
    ({"choices": [{"message": {"content": "<think>Okay.</think>y"}, "finish_reason": "stop"}]}, "",
     "<think>Okay.</think>y"),
    ({"choices": [{"text": "Hmm.</think>z", "finish_reason": "stop"}]}, "", "Hmm.</think>z"),  # /v1/completions
])
def test_a_json_answer_is_read_whole(body, reasoning, content):
    reader = read(json.dumps(body).encode(), False)
    assert ("".join(reader.reasoning), "".join(reader.content)) == (reasoning, content)


def test_an_answer_that_is_not_json_is_read_as_nothing():
    reader = read(b"<html>oops</html>", False)
    assert (reader.reasoning, reader.content, reader.finish_reason) == ([], [], None)


# ---- the log on disk ----
KEYWORDS = ("Wait", "Hmm", "So")


def test_a_restart_cuts_a_partial_last_line_and_appends(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    path = log / "traffic-20261206T190000.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "cou')  # a write cut short by a kill
    writer = TrafficLog(LogSettings(str(log), KEYWORDS, rotate_seconds=1e12))
    writer.start()
    writer.file.write(b'{"id": "d"}\n')
    writer.stop()
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n{"id": "d"}\n'


def exchange(prompt="Why?", reasoning="Hmm. Wait, so.", expected=2.0):
    return Exchange(request_id="r1", arrival=100.0, finish=101.5, first_token=100.25, prompt=prompt,
                    served_model="m", model="m", prediction={"score": 0.1, "expected_counts": expected,
                                                             "priority": 7, "upstream": "default"},
                    status=200, error=None, reasoning=reasoning, content="ok", finish_reason="stop",
                    completion_tokens=9, reasoning_tokens=None, text_capped=False)


def test_a_log_record_counts_the_trace_and_keeps_no_text_when_prompts_are_hashed():
    pattern = keyword_pattern(KEYWORDS)
    record = log_record(exchange(), pattern, keep_prompts=True, abnormal_ratio=1.5)
    # Hmm, Wait, so: "so" is lower case and the keywords are case-sensitive, so 2 keywords + 1 = 3 (not over 1.5 x 2
    # = 3); think chars: the 14 of the trace and the newline before </think>, as compute_counts measures them
    assert (record["counts"], record["think_chars"], record["ttft_s"], record["abnormal"]) == (3, 15, 0.25, False)
    assert record["content"] == "Hmm. Wait, so.\n</think>\n\nok" and record["instruction"] == "Why?"
    hashed = log_record(exchange(), pattern, keep_prompts=False, abnormal_ratio=1.4)
    assert (hashed["instruction"], hashed["content"], hashed["counts"], hashed["abnormal"]) == (None, None, 3, True)
    assert hashed["prompt_hash"] == prompt_id("Why?")


def test_the_queue_drops_and_counts_what_it_cannot_hold(tmp_path):
    dropped = []
    writer = TrafficLog(LogSettings(str(tmp_path), KEYWORDS, queue_size=10, queue_chars=40),
                        on_drop=lambda: dropped.append(1))  # not started: nothing is written
    assert writer.submit(exchange(reasoning="x" * 20))  # 4 + 20 + 2 = 26 characters wait
    assert not writer.submit(exchange(reasoning="y" * 20))  # 52 would pass 40
    assert writer.submit(exchange(reasoning=""))  # 6 more: 32
    assert len(dropped) == 1 and writer.waiting_chars == 32


# ---- through the proxy ----
def real_traces(n=24):
    """n traces of the shared public files (MisguidedAttention and tts-knowledge) as canonical records."""
    rows = list(csv.DictReader((SHARED / "MANIFEST.tsv").open(), delimiter="\t"))
    files = [r["file"] for r in rows if "MisguidedAttention" in r["file"]][:1] + \
            [r["file"] for r in rows if "tts-knowledge" in r["file"]][:1]
    records = []
    for name in files:
        records += ingest_file(SHARED / name)[0][:n // 2]
    return records


class TraceEngine:
    """Answers each prompt with its trace: as reasoning_content, streamed in small deltas or whole."""

    def __init__(self, traces):
        self.traces = traces

    async def complete(self, request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        thinking, _, answer = self.traces[prompt].partition("\n</think>\n\n")
        if not body.get("stream"):
            return JSONResponse({"choices": [{"message": {"reasoning_content": thinking, "content": answer},
                                              "finish_reason": "stop"}], "usage": {"completion_tokens": 5}})
        pieces = [thinking[i:i + 40] for i in range(0, len(thinking), 40)]

        async def chunks():
            for piece in pieces:
                yield b"data: " + json.dumps({"choices": [{"delta": {"reasoning_content": piece}}]}).encode() + b"\n\n"
            last = {"choices": [{"delta": {"content": answer}, "finish_reason": "stop"}]}
            yield b"data: " + json.dumps(last).encode()
            yield b"\n\ndata: [DONE]\n\n"
        return StreamingResponse(chunks(), media_type="text/event-stream")

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


def log_lines(folder):
    return [json.loads(line) for path in sorted(folder.glob("traffic-*.jsonl")) for line in path.open()]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/real_traces")
def test_real_traces_through_the_proxy_give_one_record_each_with_their_counts(model_dir, tmp_path, counting):
    records = real_traces()
    traces = {r["instruction"]: r["content"] for r in records}
    expected = compute_counts(records, counting).set_index("text")["counts"].to_dict()
    with in_thread(TraceEngine(traces).app()) as engine, \
            service(model_dir, "--upstream", engine, "--traffic-log", tmp_path / "log") as (url, proc):
        for i, prompt in enumerate(traces):
            body = {"model": "served-model", "stream": i % 2 == 0, "messages": [{"role": "user", "content": prompt}]}
            reply = httpx.post(f"{url}/v1/chat/completions", timeout=30, json=body)
            assert reply.status_code == 200
            # read on the side, passed on unchanged: the engine's own bytes
            assert reply.content == httpx.post(f"{engine}/v1/chat/completions", json=body).content
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    records = log_lines(tmp_path / "log")
    assert len(records) == len(traces) and len({r["id"] for r in records}) == len(traces)  # one record per request
    assert {r["instruction"]: r["counts"] for r in records} == expected
    assert all(r["model"] == "served-model" and r["prediction"]["expected_counts"] > 0 and r["ttft_s"] >= 0
               for r in records)
    # The log is a trace file like any other: ingest reads it back with the same counts.
    again, problems, kind = ingest_file(sorted((tmp_path / "log").glob("traffic-*.jsonl"))[0])
    assert kind == "canonical" and problems.total == 0
    assert compute_counts(again, counting).set_index("text")["counts"].to_dict() == expected


async def burst(url, prompts):
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*[client.post(f"{url}/v1/chat/completions", json={
            "messages": [{"role": "user", "content": p}]}) for p in prompts], return_exceptions=True)


@pytest.mark.slow
def test_a_killed_proxy_loses_at_most_the_last_batch_and_a_restart_appends(model_dir, tmp_path):
    traces = {f"Question {i}?": f"So. Wait {i}.\n</think>\n\nAnswer {i}." for i in range(60)}
    prompts = list(traces)
    log = tmp_path / "log"
    with in_thread(TraceEngine(traces).app()) as engine:
        with service(model_dir, "--upstream", engine, "--traffic-log", log) as (url, proc):
            for prompt in prompts[:20]:
                assert httpx.post(f"{url}/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": prompt}]}).status_code == 200
            time.sleep(1.0)  # past the writer's 0.2 s flush: these 20 are on disk
            asyncio.run(burst(url, prompts[20:50]))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        with service(model_dir, "--upstream", engine, "--traffic-log", log) as (url, proc):
            for prompt in prompts[50:]:
                assert httpx.post(f"{url}/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": prompt}]}).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    files = sorted(log.glob("traffic-*.jsonl"))
    assert len(files) == 1  # the restart appended to the same file
    written = [r["instruction"] for r in log_lines(log)]  # every line parses
    assert written[:20] == prompts[:20] and written[-10:] == prompts[50:]
    assert len(written) == len(set(written)) and set(written[20:-10]) <= set(prompts[20:50])


def logged(url, n, seconds=30):
    """Wait until the proxy's traffic log has written n records (its writer flushes in batches)."""
    deadline = time.time() + seconds
    while metric(url, "thinkcount_traffic_log_records_total") < n:
        assert time.time() < deadline, f"the log did not reach {n} records"
        time.sleep(0.1)


# ---- drift and abnormal answers ----
def test_window_figures_by_hand():
    same = window_figures([(e, e) for e in range(1, 11)])
    assert (same["requests"], same["tau"], same["median_ratio"]) == (10, pytest.approx(1.0), 1.0)
    reverse = window_figures([(e, 11 - e) for e in range(1, 11)])
    # ratios 10, 4.5, 2.67, 1.75, 1.2, 0.83, 0.57, 0.375, 0.22, 0.1: the median is (1.2 + 0.8333) / 2
    assert (reverse["tau"], reverse["median_ratio"]) == (pytest.approx(-1.0), pytest.approx((1.2 + 5 / 6) / 2))
    assert window_figures([(1, 2)] * 9)["tau"] is None  # too few, and constant: undefined, not 0


def write_log(folder, pairs, model="m"):
    folder.mkdir()
    (folder / "traffic-20261206T000000.jsonl").write_text("".join(json.dumps({
        "finish": 1000.0 + i, "status": 200, "error": None, "truncated": False, "model": model, "counts": realised,
        "prediction": {"expected_counts": expected}}) + "\n" for i, (expected, realised) in enumerate(pairs)))
    return folder


def test_the_drift_command_flags_a_predictor_shuffled_against_its_targets(tmp_path, capsys):
    rng = np.random.default_rng(0)
    realised = rng.integers(1, 200, 300)
    good = write_log(tmp_path / "good", [(r * 1.1, int(r)) for r in realised])
    shuffled = write_log(tmp_path / "shuffled", [(e * 1.1, int(r))
                                                 for e, r in zip(rng.permutation(realised), realised)])
    assert drift([str(good), "--window-seconds", "100000"]) == 0
    assert "tau 1.000" in capsys.readouterr().out
    assert drift([str(shuffled), "--window-seconds", "100000", "--threshold", "0.1"]) == 3
    assert "drift: below tau 0.1" in capsys.readouterr().out


class LoopEngine:
    """Thinks `Wait` as many times as its table says for the prompt."""

    def __init__(self, waits):
        self.waits = waits

    async def complete(self, request):
        prompt = (await request.json())["messages"][-1]["content"]
        return JSONResponse({"choices": [{"message": {"reasoning_content": "Wait. " * self.waits[prompt],
                                                      "content": "ok"}, "finish_reason": "stop"}]})

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


@pytest.mark.slow
def test_the_proxy_exports_window_tau_and_flags_a_looping_answer(model_dir, tmp_path, params):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    # Residuals with p99 = ln 14: an answer past 14 x its expected counts (at least 1) is abnormal.
    (folder / modelfolder.RESIDUALS).write_text(json.dumps({"target": "counts", "rows": 100, "log_ratio_quantiles": {
        "p50": 0.0, "p90": 0.5, "p95": 0.8, "p99": float(np.log(14))}}))
    modelfolder.seal(folder, "m08_markers", modelfolder.read_label_config(folder / "label_config.json"))
    prompts = [f"Explain item {i} {'in detail ' * i}please." for i in range(12)]
    expected = {p: r["expected_counts"] for p, r in zip(prompts, Predictor.load(folder).predict(prompts))}
    order = sorted(prompts, key=expected.get)
    assert len(set(expected.values())) == len(prompts)  # no ties: the reversed order gives tau -1 exactly
    # The engine thinks least where the predictor expects most (12 "Wait" down to 1: counts 13 to 2, under 14 x
    # any expectation) ...
    waits = {p: len(prompts) - i for i, p in enumerate(order)}
    loop = order[0]
    waits[loop] += int(20 * max(expected[loop], 1))  # ... and one answer loops: over 14 x its expected counts
    with in_thread(LoopEngine(waits).app()) as engine, \
            service(folder, "--upstream", engine, "--traffic-log", tmp_path / "log", "--drift-window", 50) as (url, _):
        for prompt in prompts:
            assert httpx.post(f"{url}/v1/chat/completions", json={
                "messages": [{"role": "user", "content": prompt}]}).status_code == 200
        logged(url, len(prompts))
        assert metric(url, "thinkcount_abnormal_answers_total") == 1
        assert metric(url, "thinkcount_window_requests") == len(prompts)
        assert metric(url, "thinkcount_window_tau") == pytest.approx(-1.0)  # the engine contradicts the predictor
    by_prompt = {r["instruction"]: r for r in log_lines(tmp_path / "log")}
    assert [p for p, r in by_prompt.items() if r["abnormal"]] == [loop]
    assert [by_prompt[p]["counts"] for p in order] == [waits[p] + 1 for p in order]
