"""A stage ends when the process that started it (dvc) dies: an orphaned train stage would go on writing its
outputs while the next `dvc repro` starts another writer on the same files.

The launchers are read once, as the stage process starts (stages/__init__.py, before torch and the rest are
imported): a train stage spends seconds importing, and a shell whose dvc died in that time has already been
handed to init, which would then pass for the launcher. This module imports only the standard library and
psutil so that it runs first."""
import os
import sys
import threading
import time

import psutil  # a dependency of dvc

SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
LAUNCHERS = []  # set once by watch_launchers: the processes whose end stops this stage


def launchers():
    """The processes this stage lives under: its parent, and above it any shell the command went through
    and, for a torchrun rank, torchrun itself, up to the first other process (dvc)."""
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


def alive(process):
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch_launchers(interval=1.0):
    """Read the launchers now and stop this process as soon as one of them dies (checked once per interval).
    A second call does nothing: the chain read later may already end at init."""
    if LAUNCHERS:
        return
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
