"""What every stage script shares: run main(params), turn a UserError into one line and exit 1, and end
when the process that started the stage (dvc) dies.

With THINKCOUNT_STAGE_TIMES=FILE, each stage appends its wall time from process start (imports
included) to FILE as a JSON line: benchmarks/stage_times.py tabulates a run's."""
import json
import os
import sys
import threading
import time

from thinkcount import UserError, exit_status
from thinkcount.pipeline.config import load_params


def run(main):
    exit_with_parent()
    status = exit_status(lambda: main(load_params()))
    if status:
        sys.exit(status)
    record_time()


SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}


def launchers():
    """The processes this stage lives under: its parent, and above it any shell the command went through
    and, for a torchrun rank, torchrun itself, up to the first other process (dvc)."""
    import psutil  # a dependency of dvc
    chain, process = [], psutil.Process().parent()
    torchrun_levels = 1 if "LOCAL_RANK" in os.environ else 0
    while process is not None:
        chain.append(process)
        if process.name() in SHELLS or torchrun_levels:
            torchrun_levels -= process.name() not in SHELLS
            process = process.parent()
            continue
        break
    return chain


LAUNCHERS = []  # set by exit_with_parent: the processes whose end stops this stage


def alive(process):
    import psutil
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def exit_with_parent(interval=1.0):
    """End this process as soon as one of its launchers dies: an orphaned train stage would go on writing
    its outputs while the next `dvc repro` starts another writer on the same files."""
    LAUNCHERS[:] = launchers()

    def watch():
        while True:
            stop_if_orphaned()
            time.sleep(interval)
    if LAUNCHERS:
        threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def stop_if_orphaned():
    """Stop now if a launcher has died. The watcher calls it once per interval; a stage calls it itself before
    a step that must not happen once dvc has gone (publishing a model folder), as a small model finishes its
    folder in less than an interval."""
    if not all(alive(p) for p in LAUNCHERS):
        print(f"error: {sys.argv[0]}: the process that started this stage has ended; stopping.", file=sys.stderr)
        os._exit(1)


def record_time():
    path = os.environ.get("THINKCOUNT_STAGE_TIMES")
    if not path or int(os.environ.get("RANK", "0")) != 0:
        return
    import psutil  # a dependency of dvc; only needed here
    started = psutil.Process().create_time()
    stage = sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py") + "".join(f"@{a}" for a in sys.argv[1:])
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"stage": stage, "seconds": round(time.time() - started, 2)}) + "\n")


def method_name(params):
    """The method a foreach stage was called for (its first argument), checked against params.yaml."""
    if len(sys.argv) < 2 or sys.argv[1] not in params.methods:
        given = sys.argv[1] if len(sys.argv) > 1 else "(none)"
        raise UserError(f"unknown method '{given}'; params.yaml defines {', '.join(params.methods)}.")
    return sys.argv[1]
