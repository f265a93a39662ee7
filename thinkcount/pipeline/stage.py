"""What every stage script shares: run main(params) and turn a UserError into one line and exit 1. (Ending
when the process that started the stage dies is thinkcount/pipeline/launcher.py, started by stages/__init__.py.)

With THINKCOUNT_STAGE_TIMES=FILE, each stage appends its wall time from process start (imports
included) to FILE as a JSON line: benchmarks/stage_times.py tabulates a run's."""
import json
import os
import sys
import time

from thinkcount import UserError, exit_status
from thinkcount.pipeline.config import load_params


def run(main):
    status = exit_status(lambda: main(load_params()))
    if status:
        sys.exit(status)
    record_time()


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
