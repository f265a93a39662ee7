"""Online adaptation: the proxy refits a head from its traffic log and swaps it in only when it ranks the newest
requests better; on traffic whose effort the base does not know, the served head's window tau rises above the
base's; a challenger fitted on shuffled targets is refused; pin and rollback."""
import json
import time

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from test_adapt import own_traces
from test_serve import in_thread, metric, service
from test_traffic import logged
from thinkcount.data.counting import keyword_pattern
from thinkcount.serve.adapt import AdaptSettings, fit, own_traces as traces_of
from thinkcount.serve.online import (OnlineAdapter, OnlineSettings, challenge, newest_prompts, newest_records,
                                     usable)
from thinkcount.serve.predict import Predictor
from thinkcount.serve.proxy import PATHS

KEYWORDS = ("Wait",)


def test_a_challenger_must_beat_the_champion_by_the_margin():
    assert challenge(0.2, 0.25, 0.0) and not challenge(0.2, 0.25, 0.1) and not challenge(0.2, 0.2, 0.0)
    assert challenge(None, 0.1, 0.0) and not challenge(0.5, None, 0.0)


def log_records(rows, start=1_800_000_000.0, shuffle_until=0, seed=0):
    """Traffic-log records of own traces, one a second; the first shuffle_until have their traces shuffled."""
    contents = [r["content"] for r in rows]
    rng = np.random.default_rng(seed)
    contents[:shuffle_until] = rng.permutation(contents[:shuffle_until]).tolist()
    return [{"id": str(i), "finish": start + i, "status": 200, "instruction": r["instruction"], "input": "",
             "content": c, "model": "qwen3-8b"} for i, (r, c) in enumerate(zip(rows, contents))]


def write_log(folder, records, per_file=150):
    folder.mkdir(exist_ok=True)
    for n, start in enumerate(range(0, len(records), per_file)):
        (folder / f"traffic-20270101T0000{n:02d}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records[start:start + per_file]))
    return folder


def test_a_refit_reads_a_bounded_window_and_holds_out_the_newest_prompts(tmp_path):
    folder = write_log(tmp_path / "log", log_records(own_traces(400, seed=3)))
    records = newest_records(folder, 250)
    assert [r["id"] for r in records] == [str(i) for i in range(150, 400)]  # across files, newest last
    traces = usable(records, keyword_pattern(KEYWORDS))
    train, test = newest_prompts(traces, 0.2)
    times = np.array(traces.times)
    assert test.sum() == 50 and times[train].max() < times[test].min()


def test_a_challenger_fitted_on_shuffled_targets_is_refused(model_dir, tmp_path):
    rows = own_traces(400, seed=4)
    # The champion: a head fitted on true traces; the log's older 80% are shuffled, its newest 20% true.
    champion_head, _ = fit(Predictor.load(model_dir), traces_of(
        [{**r, "prompt_id": str(i), "truncated": False, "time": None} for i, r in enumerate(own_traces(300, 5))],
        keyword_pattern(KEYWORDS)), AdaptSettings())
    base = Predictor.load(model_dir)
    champion = Predictor(base.model, base.tokenizer, base.config, champion_head)
    folder = write_log(tmp_path / "log", log_records(rows, shuffle_until=320))
    adapter = OnlineAdapter(model_dir, folder, tmp_path / "heads", OnlineSettings(every=1), KEYWORDS, True)
    result = adapter.refit(champion)
    assert result["decision"] == "refused" and result["champion_tau"] > 0.5 > result["challenger_tau"]
    assert not (tmp_path / "heads").exists() and adapter.previous() is None
    # The same log unshuffled: the challenger learns what the base does not, and wins over the base.
    folder = write_log(tmp_path / "true", log_records(rows))
    adapter = OnlineAdapter(model_dir, folder, tmp_path / "heads", OnlineSettings(every=1), KEYWORDS, True)
    result = adapter.refit(base)
    assert result["decision"] == "swap" and result["challenger_tau"] > result["champion_tau"] + 0.3
    assert Predictor.load(result["folder"]).head is not None


class QuestionEngine:
    """Thinks 4 "Wait" per question the prompt asks: an effort ordering the base model never learned."""

    async def complete(self, request):
        prompt = (await request.json())["messages"][-1]["content"]
        waits = 4 * prompt.count("?") + len(prompt) % 3
        return JSONResponse({"choices": [{"message": {"reasoning_content": "Wait. " * waits, "content": "ok"},
                                          "finish_reason": "stop"}]})

    def app(self):
        return Starlette(routes=[Route(path, self.complete, methods=["POST"]) for path in PATHS])


def send(url, rows):
    for row in rows:
        assert httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": "qwen3-8b", "messages": [{"role": "user", "content": row["instruction"]}]}).status_code == 200


@pytest.mark.slow
def test_the_proxy_learns_the_deployment_and_its_window_tau_rises(model_dir, tmp_path):
    """Base window tau over the first 100 requests; one refit after 150; the next 100 requests are ranked by
    the swapped-in head. Stated: within 250 requests the served head's window tau is above the base's."""
    rows = own_traces(250, seed=6)
    log = tmp_path / "log"
    with in_thread(QuestionEngine().app()) as engine, \
            service(model_dir, "--upstream", engine, "--traffic-log", log, "--adapt-every", 150, "--drift-window", 100,
                    "--drift-threshold", -1, "--adapt-dir", tmp_path / "heads", "--admin-token", "t") as (url, _):
        send(url, rows[:100])
        logged(url, 100)
        base_tau = metric(url, "thinkcount_window_tau")
        send(url, rows[100:150])
        deadline = time.time() + 120
        while metric(url, 'thinkcount_refits_total{decision="swap"}') < 1:
            assert time.time() < deadline and metric(url, 'thinkcount_refits_total{decision="refused"}') == 0
            time.sleep(0.5)
        assert httpx.get(f"{url}/healthz").json()["model"].endswith("head-0001")
        assert metric(url, "thinkcount_head_traces") > 50
        send(url, rows[150:250])
        logged(url, 250)  # the drift window now holds only requests the new head scored
        head_tau = metric(url, "thinkcount_window_tau")
        assert head_tau > base_tau + 0.2, (base_tau, head_tau)
        assert httpx.post(f"{url}/head", json={"action": "rollback"}).status_code == 401  # admin only
        reply = httpx.post(f"{url}/head", json={"action": "rollback"}, headers={"authorization": "Bearer t"})
        assert reply.status_code == 200 and reply.json()["model"] == str(model_dir)
        assert metric(url, "thinkcount_head_rollbacks_total") == 1
