"""Where and how a train stage runs: the device, the process count checked against the hardware, the
precision, and the torchrun command that relaunches the stage for several processes or nodes."""
import os
import shutil
import sys

import torch

from thinkcount import UserError


def resolve_device(train):
    """cuda or cpu, from train.device (auto: GPUs when visible)."""
    if train.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if train.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no GPU is visible to PyTorch; use auto or cpu.")
    return train.device


def check_processes(train, device):
    n = train.processes
    if device == "cuda" and n > torch.cuda.device_count():
        raise UserError(f"train.processes is {n} but {torch.cuda.device_count()} GPU(s) are visible; "
                        "use at most one process per GPU.")
    if device == "cpu" and n > 1 and train.device == "auto":
        raise UserError(f"train.processes is {n} but no GPU is visible; set train.device: cpu to train "
                        f"{n} CPU processes over gloo, or train.processes: 1.")


def running_processes():
    """Processes in this training run: torchrun's WORLD_SIZE, 1 outside it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_precision(precision, device, model_type):
    """bf16/fp16 need a GPU; fp16 overflows in DeBERTa-v3 (model type deberta-v2), so it is refused there."""
    if precision in ("bf16", "fp16") and device == "cpu":
        raise UserError(f"train.precision is {precision} but training runs on the CPU; use auto or fp32.")
    if precision == "fp16" and model_type == "deberta-v2":
        raise UserError("train.precision fp16 overflows with DeBERTa-v2/v3 encoders; use bf16 or auto.")
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("train.precision is bf16 but this GPU does not support it; use fp16 or auto.")


def precision_flags(precision, device):
    """Trainer's mixed-precision flag: auto is bf16 where supported, else fp16, on GPUs; fp32 on the CPU."""
    if device == "cpu" or precision == "fp32":
        return {}
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {precision: True}


def launch_command(train, name):
    """The command that relaunches `python -m stages.train NAME` under torchrun, or None to train in
    this process (one process on one node, or already inside torchrun)."""
    if "LOCAL_RANK" in os.environ or (train.processes == 1 and train.nodes == 1):
        return None
    check_processes(train, resolve_device(train))
    # This interpreter and this workspace's module: a relaunch must run the code dvc recorded.
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={train.processes}"]
    stage = ["-m", "stages.train", name]
    if train.nodes == 1:
        return torchrun + stage
    if not train.rdzv_endpoint:
        raise UserError(f"train.nodes is {train.nodes}; set train.rdzv_endpoint to host:port on the first node.")
    srun = shutil.which("srun")
    if srun is None or "SLURM_JOB_ID" not in os.environ:
        raise UserError(f"train.nodes is {train.nodes}: run dvc repro inside a Slurm allocation "
                        "(salloc or sbatch) so that srun can start one torchrun per node.")
    return ([srun, f"--nodes={train.nodes}", "--ntasks-per-node=1"] + torchrun
            + [f"--nnodes={train.nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={train.rdzv_endpoint}"]
            + stage)
