"""The train entry point under torchrun: 2 CPU processes over gloo, each a shard of the data, rank 0
alone writing the same outputs as one process would."""
import copy
import shutil
from pathlib import Path

import pytest

from conftest import params_mapping, read_json, run_stage, write_params
from thinkcount import UserError
from thinkcount.methods.launch import check_precision, launch_command

pytestmark = pytest.mark.slow  # runs dvc or several training processes

METHOD = "m05_bin_regress"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_encoders):
    work = tmp_path_factory.mktemp("ddp")
    p = params_mapping()
    p["data"]["sample_size"] = 200
    p["encoders"]["tiny"] = {"source": tiny_encoders["bert"], "batch_size": 8, "learning_rate": 1e-3,
                             "max_length": 32}
    p["model"] = "tiny"
    p["train"].update(epochs=1, max_train_rows=48, max_val_rows=16, eval_batch_size=16)
    write_params(work, p)
    for stage in ("corpus", "counts", "filter", "split"):
        assert run_stage(stage, work).returncode == 0
    assert run_stage("label", work, METHOD).returncode == 0
    return work, p


def outputs(folder):
    return sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file())


def test_two_cpu_processes_train_on_half_the_data_each_and_rank_0_writes_what_one_process_writes(workspace):
    work, p = workspace
    write_params(work, p)
    single = run_stage("train", work, METHOD)
    assert single.returncode == 0, single.stderr[-2000:]
    one = read_json(work / f"metrics/train/{METHOD}.json")["phases"][0]
    files_one = outputs(work / "models" / METHOD)
    predictions_one = (work / f"data/predictions/{METHOD}.jsonl").read_text().count("\n")
    shutil.rmtree(work / "models" / METHOD)

    p2 = copy.deepcopy(p)
    p2["train"].update(device="cpu", processes=2)
    write_params(work, p2)
    double = run_stage("train", work, METHOD)
    assert double.returncode == 0, double.stderr[-3000:]
    two = read_json(work / f"metrics/train/{METHOD}.json")["phases"][0]
    # 48 train rows: one process takes batches of 8 (6 batches); with fixed_global each of 2 processes
    # takes batches of 4 from its own 24 rows (6 batches): the same global batch, half the data each.
    assert (one["processes"], one["batch_size_per_process"], one["train_batches_per_process"]) == (1, 8, 6)
    assert (two["processes"], two["batch_size_per_process"], two["train_batches_per_process"]) == (2, 4, 6)
    assert one["steps"] == two["steps"] == 6
    assert outputs(work / "models" / METHOD) == files_one  # no checkpoints left, nothing per rank
    assert (work / f"data/predictions/{METHOD}.jsonl").read_text().count("\n") == predictions_one


@pytest.mark.parametrize("train, message", [
    ({"processes": 2, "device": "auto"}, "train.processes is 2 but no GPU is visible; set train.device: cpu"),
    ({"processes": 2, "device": "cuda"}, "train.device is cuda but no GPU is visible"),
    ({"nodes": 2}, "set train.rdzv_endpoint"),
    ({"nodes": 2, "rdzv_endpoint": "head:29500"}, "run dvc repro inside a Slurm allocation"),
])
def test_launch_requests_the_hardware_cannot_meet_stop_with_one_sentence(params, train, message):
    import torch
    if torch.cuda.is_available():
        pytest.skip("these requests are impossible only without a GPU")
    with pytest.raises(UserError, match=message):
        launch_command(params.train.model_copy(update=train), METHOD)


def test_launch_command_runs_this_interpreter_and_this_workspace_module(params, monkeypatch):
    import sys
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launch_command(params.train, METHOD) is None
    command = launch_command(params.train.model_copy(update={"processes": 2, "device": "cpu"}), METHOD)
    assert command == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                       "-m", "stages.train", METHOD]
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("PATH", str(Path(__file__).parent / "bin"))  # a stand-in srun
    command = launch_command(params.train.model_copy(update={"processes": 2, "device": "cpu", "nodes": 2,
                                                             "rdzv_endpoint": "head:29500"}), METHOD)
    assert command[1:3] == ["--nodes=2", "--ntasks-per-node=1"] and command[-6:] == [
        "--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=head:29500", "-m", "stages.train", METHOD]


@pytest.mark.parametrize("precision, device, model_type, message", [
    ("bf16", "cpu", "bert", "train.precision is bf16 but training runs on the CPU"),
    ("fp16", "cuda", "deberta-v2", "fp16 overflows with DeBERTa"),
])
def test_precision_that_cannot_run_stops_with_one_sentence(precision, device, model_type, message):
    with pytest.raises(UserError, match=message):
        check_precision(precision, device, model_type)
