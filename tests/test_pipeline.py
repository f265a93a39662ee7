"""The DVC pipeline end to end on a tiny corpus and tiny encoders, in a scratch git repository:
repro, a no-op second repro, `dvc exp run -S model=...`, and the predictor against the stage outputs."""
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from scipy.stats import kendalltau

from conftest import ROOT, read_json, verb
from thinkcount import UserError
from thinkcount.data.counting import prompt_text
from thinkcount.ops.scratch import prepare
from thinkcount.serve.predict import Predictor

predict_main = verb("predict")


pytestmark = pytest.mark.slow  # runs dvc or several training processes

METHODS = ["m10_kmeans_clean", "m13_rank"]


def sh(cwd, *cmd):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_encoders):
    work = tmp_path_factory.mktemp("pipeline")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        prepare(work, {"data": {"sample_size": 240}, "evaluate": {"bootstrap": 50},
                       "train": {"epochs": 1, "max_train_rows": 64, "max_val_rows": 16, "eval_batch_size": 32}})
    finally:
        os.chdir(cwd)
    for key, value in (("user.name", "thinkcount tests"), ("user.email", "tests@localhost")):
        sh(work, "git", "config", key, value)  # dvc exp commits need an identity, also on a bare machine
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["methods"] = {m: params["methods"][m] for m in METHODS}
    params["reference"] = {}
    for family in ("bert", "roberta"):
        params["encoders"][f"tiny-{family}"] = {"source": tiny_encoders[family], "batch_size": 16,
                                                "learning_rate": 1e-3, "max_length": 32}
    params["model"] = "tiny-bert"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(work, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tiny params")
    sh(work, "dvc", "repro")
    return work


def test_repro_builds_every_stage_and_a_second_repro_does_nothing(repo):
    stages = sh(repo, "dvc", "stage", "list")
    for m in METHODS:
        assert f"label@{m}" in stages and f"train@{m}" in stages and f"evaluate@{m}" in stages
    summary = read_json(repo / "metrics/summary.json")
    baselines = set(yaml.safe_load((repo / "params.yaml").read_text())["baselines"])
    assert {r["method"] for r in summary["rows"]} == set(METHODS) | baselines
    report = (repo / "reports/comparison.md").read_text()
    assert "| m10_kmeans_clean | classification |" in report and "| m13_rank | ranking |" in report
    # m10 appears in the ranking, the details, the leakage audit and the serving section
    assert "## Leakage audit" in report and report.count("| m10_kmeans_clean |") == 4
    assert (repo / "reports/tau.png").stat().st_size > 1000
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")
    shown = sh(repo, "dvc", "metrics", "show", "--md").strip().splitlines()
    header = [c.strip() for c in shown[0].strip("|").split("|")]
    assert header == ["Path", "auc_top10", "native", "oracle_share", "serve_mean", "spearman", "target", "tau",
                      "tau_high", "tau_low"]
    rows = {line.split("|")[1].strip(): line for line in shown[2:]}
    assert set(rows) == {f"metrics/methods/{m}.json" for m in [*METHODS, *baselines]}
    tau = float(rows["metrics/methods/m13_rank.json"].split("|")[header.index("tau") + 1])
    assert tau == pytest.approx(read_json(repo / "metrics/eval/m13_rank.json")["yardstick"]["all"]["kendall_tau"],
                                abs=1e-4)


def test_identical_retraining_keeps_the_model_hash(repo):
    """Timings stay out of cached outputs, so `dvc repro -f` of a train stage records the same model hash."""
    def model_hash():
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train@m13_rank"]["outs"]
        return next(o["md5"] for o in lock if o["path"] == "models/m13_rank")
    before = model_hash()
    sh(repo, "dvc", "repro", "-f", "-s", "train@m13_rank")
    assert model_hash() == before


def test_predictor_api_and_cli_agree_with_the_stage_predictions(repo, tmp_path):
    for method in METHODS:
        stage_rows = [json.loads(line) for line in (repo / f"data/predictions/{method}.jsonl").open()][:20]
        counts = {(r["worker_id"], r["sample_id"]): r for r in map(json.loads, (repo / "data/counts.jsonl").open())}
        texts = [counts[(r["worker_id"], r["sample_id"])]["text"] for r in stage_rows]
        api = Predictor.load(repo / f"models/{method}").predict(texts)
        assert np.allclose([a["score"] for a in api], [r["score"] for r in stage_rows], atol=1e-4)
        assert np.allclose([a["expected_counts"] for a in api], [r["expected_counts"] for r in stage_rows], rtol=1e-4)
        if method == "m10_kmeans_clean":
            assert api[0]["label_name"].startswith("cluster") and len(api[0]["probs"]) == len(stage_rows[0]["probs"])
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in texts))
        out = tmp_path / "out.jsonl"
        assert predict_main(["--model", str(repo / f"models/{method}"), "--input", str(prompts),
                             "--output", str(out)]) == 0
        cli = [json.loads(line) for line in out.open()]
        assert [c["score"] for c in cli] == pytest.approx([a["score"] for a in api], abs=1e-5)


def test_exp_run_swaps_the_encoder_for_every_training_stage(repo):
    before = read_json(repo / "metrics/train/m13_rank.json")
    assert before["model"] == "tiny-bert"
    out = sh(repo, "dvc", "exp", "run", "-S", "model=tiny-roberta")
    for m in METHODS:
        assert f"train@{m}" in out
        assert read_json(repo / f"metrics/train/{m}.json")["model"] == "tiny-roberta"
    assert "Running stage 'corpus'" not in out and "Running stage 'split'" not in out  # data stays cached
    assert read_json(repo / "metrics/eval/m13_rank.json")["encoder"] == "tiny-roberta"


def test_editing_an_unused_encoder_leaves_every_stage_up_to_date(repo):
    path = repo / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    params["encoders"]["deberta-v3-large"]["batch_size"] = 4
    params["encoders"]["mine"] = {"source": "/nowhere", "batch_size": 2, "learning_rate": 1e-5, "max_length": 16}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")
        params["encoders"][params["model"]]["batch_size"] = 4  # the encoder in use does invalidate training
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        changed = sh(repo, "dvc", "status")
        assert all(f"train@{m}" in changed for m in METHODS) and "label@" not in changed
    finally:
        path.write_text(original)


def commit(repo, message):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def exp_file(repo, name, path):
    """A file as the experiment `name` left it, from its git ref."""
    refs = sh(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps").split()
    ref = next(r for r in refs if r.endswith(f"/{name}"))
    return sh(repo, "git", "show", f"{ref}:{path}")


def test_queued_experiments_run_their_own_workspace_code(repo):
    """`dvc exp run --queue` runs in a temporary workspace: the stage must import that workspace's code. Both
    experiments change what only the compare stage reads, so each reruns one stage."""
    commit(repo, "results before the queue")
    stage = repo / "stages/compare.py"
    original = stage.read_text()
    stage.write_text(original.replace('"make run (dvc repro)"', '"make run (queued code)"'))
    try:
        sh(repo, "dvc", "exp", "run", "--queue", "-n", "probe")
    finally:
        stage.write_text(original)
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "repeats3", "-S", "serving.repeats=3")
    sh(repo, "dvc", "exp", "run", "--run-all", "-j", "2")
    assert exp_file(repo, "probe", "reports/comparison.md").startswith(
        "# Comparison of predictors\n\nProduced by `make run (queued code)`")
    assert "(queued code)" not in (repo / "reports/comparison.md").read_text()
    assert yaml.safe_load(exp_file(repo, "repeats3", "params.yaml"))["serving"]["repeats"] == 3
    assert json.loads(exp_file(repo, "repeats3", "metrics/serving.json")) != json.loads(
        (repo / "metrics/serving.json").read_text())  # 3 arrival sequences, not 20
    shown = sh(repo, "dvc", "exp", "show", "--md", "--only-changed", "--drop", "Created|State|Executor")
    assert "probe" in shown and "repeats3" in shown


def test_push_then_pull_in_a_fresh_clone_gives_a_working_predictor_with_nothing_rebuilt(repo, tmp_path):
    sh(repo, "dvc", "remote", "add", "-d", "-f", "shared", str(tmp_path / "remote"))
    commit(repo, "results and remote")
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull", "train@m13_rank")  # the per-target form works on partial builds too
    prompts = ["Explain how vaccines work.", "List three fruits."]
    pulled = Predictor.load(clone / "models/m13_rank").predict(prompts)
    assert [r["score"] for r in pulled] == pytest.approx(
        [r["score"] for r in Predictor.load(repo / "models/m13_rank").predict(prompts)], abs=1e-6)
    sh(clone, "dvc", "pull")
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "repro")
    # A model registry finds versions by GTO's git tags: register one, then fetch it without a clone.
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "m13_rank@v0.1.0", "-m", "v0.1.0")
    sh(tmp_path, "dvc", "artifacts", "get", str(repo), "m13_rank", "-o", str(tmp_path / "artifact"))
    assert Predictor.load(tmp_path / "artifact").predict(prompts[:1])[0]["score"] == pytest.approx(
        pulled[0]["score"], abs=1e-6)


def stage_writers(repo):
    """Train stage processes still running in repo."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if "stages.train" in " ".join(process.info["cmdline"] or []) and process.info["cwd"] == str(repo):
            found.append(process)
    return found


def test_a_killed_repro_publishes_no_model_and_leaves_no_writer(repo):
    """dvc killed while train@m13_rank has saved its weights but not finished its folder: no model folder
    appears, the orphaned stage stops by itself, the predictor refuses the partial folder, and the next
    repro recovers the same model."""
    before = (repo / "models/m13_rank/manifest.json").read_text()
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    dvc = subprocess.Popen(["dvc", "repro", "-f", "-s", "train@m13_rank"], cwd=repo, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = repo / "models/.m13_rank.partial"
    deadline = time.time() + 600
    while not (partial / "encoder/model.safetensors").is_file() and time.time() < deadline:
        time.sleep(0.02)
    dvc.send_signal(signal.SIGKILL)
    dvc.wait()
    _, alive = psutil.wait_procs(stage_writers(repo), timeout=15)
    assert not alive and not (repo / "models/m13_rank").exists()
    assert not (partial / "manifest.json").exists()
    with pytest.raises(UserError, match="no such model folder"):
        Predictor.load(repo / "models/m13_rank")
    with pytest.raises(UserError, match="no manifest.json, so its training did not finish"):
        Predictor.load(partial)
    sh(repo, "dvc", "repro")
    assert not partial.exists() and (repo / "models/m13_rank/manifest.json").read_text() == before


def test_the_served_profile_retrains_on_the_proxy_s_traffic_log_split_by_time(repo):
    """The loop: serve m13_rank through the proxy with the log on, replay the corpus's traces through it, then
    `python -m thinkcount profile profiles/served.yaml` retrains and evaluates on the log, split by time, with the
    served predictor's own scores as the row to beat."""
    from test_serve import in_thread, service
    from test_traffic import TraceEngine
    corpus = [json.loads(line) for line in (repo / "data/raw/corpus.jsonl").open()]
    traces = {prompt_text(r["instruction"], r["input"]): r["content"] for r in corpus}
    log = repo / "data/external/served"
    with in_thread(TraceEngine(traces).app()) as engine, \
            service(repo / "models/m13_rank", "--upstream", engine, "--traffic-log", log) as (url, proc):
        for prompt in traces:
            assert httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
                "model": "m", "messages": [{"role": "user", "content": prompt}]}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    sh(repo, sys.executable, "-m", "thinkcount", "profile", "profiles/served.yaml")
    report = read_json(repo / "metrics/data/corpus.json")
    assert report["source"] == "served" and report["rows_valid"] == len(traces)
    logged = [json.loads(line) for path in log.glob("traffic-*.jsonl") for line in path.open()]
    frame = pd.DataFrame([json.loads(line) for line in (repo / "data/counts.jsonl").open()]).merge(
        pd.DataFrame([json.loads(line) for line in (repo / "data/split.jsonl").open()]), on=["worker_id", "sample_id"])
    assert frame.loc[frame["split"] == "train", "time"].max() < frame.loc[frame["split"] == "test", "time"].min()
    # b_served is the score each test request was served with, as the log has it, against its realised counts.
    test = frame[frame["split"] == "test"]
    served = {r["instruction"]: r["prediction"]["score"] for r in logged}
    tau = kendalltau([served[t] for t in test["text"]], test["counts"]).statistic
    assert read_json(repo / "metrics/eval/b_served.json")["yardstick"]["all"]["kendall_tau"] == pytest.approx(tau)
    rows = {r["method"]: r for r in read_json(repo / "metrics/summary.json")["rows"]}
    assert set(METHODS) | {"b_served"} <= set(rows) and rows["m13_rank"]["kendall_tau"] is not None
