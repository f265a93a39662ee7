"""Hostile input, one table per layer: names that try to reach a shell or a path, readers given broken
bytes and line breaks, model folders that are partial, corrupted or mixed, the predictor's input, and a
gate given a reversed ranking. Each case asserts its one-sentence message and that nothing was lost or
half-written."""
import json
import os
import shutil
import signal
import subprocess
import sys

import psutil
import pytest
import yaml

from conftest import ROOT, params_mapping, run_stage, write_params
from thinkcount.core.jsonl import write_jsonl
from thinkcount.data.corpus import validate_records
from thinkcount.ops.gate import check

PYTHON_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}


def one_sentence(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


# ---- names: (collection, hostile name) ----
HOSTILE_NAMES = [("methods", "x; touch {marker}"), ("methods", "../../victim"), ("baselines", "b $(touch {marker})"),
                 ("encoders", "../enc"), ("features", "-rf")]


def hostile_params(collection, name):
    p = params_mapping()
    first = next(iter(p[collection]))
    p[collection][name] = p[collection][first]
    return p


@pytest.mark.parametrize("collection, template", HOSTILE_NAMES)
def test_check_refuses_a_name_that_could_reach_a_shell_or_a_path(tmp_path, collection, template):
    name = template.format(marker=tmp_path / "owned")
    write_params(tmp_path, hostile_params(collection, name))
    proc = subprocess.run([sys.executable, "-m", "thinkcount", "check"], cwd=tmp_path, env=PYTHON_ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"name {json.dumps(name)} is not allowed" in one_sentence(proc.stderr)


@pytest.mark.parametrize("template", ["x; touch {marker}", "../../victim"])
def test_make_run_stops_before_dvc_renders_a_hostile_method_name(tmp_path, template):
    """`make run` as the README gives it: the check fails, so DVC never runs a command or deletes an out."""
    work = tmp_path / "repo" / "sub"
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    work.mkdir(parents=True)
    for name in ("Makefile", "dvc.yaml", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    write_params(work, hostile_params("methods", template.format(marker=tmp_path / "owned")))
    proc = subprocess.run(["make", "-o", ".venv/.installed", "run"], cwd=work, env=PYTHON_ENV, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "is not allowed" in proc.stderr
    assert "dvc repro" not in proc.stdout.replace("python -m thinkcount check", "")
    assert not (tmp_path / "owned").exists() and (victim / "keep").is_dir() and not (work / "dvc.lock").exists()


def test_a_profile_with_a_hostile_name_is_refused_before_dvc_runs(tmp_path):
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml.safe_dump({"methods": {"m; rm -rf ~": {"variant": "all"}}}))
    proc = subprocess.run([sys.executable, "-m", "thinkcount", "profile", str(profile), "--print"], cwd=ROOT,
                          env=PYTHON_ENV, capture_output=True, text=True)
    assert proc.returncode == 1 and 'name "m; rm -rf ~" is not allowed' in one_sentence(proc.stderr)


def test_every_name_dvc_interpolates_into_a_command_is_quoted():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = [(s.get("do") or s)["cmd"] for s in stages.values()]
    interpolated = [c for c in commands if "${" in c]
    assert len(interpolated) == 5  # label, train, baseline, evaluate and heldout, each over names params.yaml holds
    assert all((c.endswith("'${key}'") or c.endswith("'${item}'")) and c.count("${") == 1 for c in interpolated)


# ---- readers: (name, bytes, (worker, sample) ids kept, problems by reason -> lines) ----
def rec(sample, **fields):
    return {"worker_id": 0, "sample_id": sample, "instruction": "Explain rain.", "content": "So.</think>A.", **fields}


def joined(records, sep):
    return sep.join(json.dumps(r) if isinstance(r, dict) else r for r in records).encode() + sep.encode()


CR_ONLY = [rec(i) for i in range(20)]
CR_ONLY[4] = '{"worker_id": 0, "sample_id": 4, broken'
READERS = [
    ("CR-only line breaks resynchronise after a malformed record", joined(CR_ONLY, "\r"),
     [(0, i) for i in range(20) if i != 4], {"malformed_json": [5]}),
    ("CRLF line breaks", joined([rec(0), rec(1)], "\r\n"), [(0, 0), (0, 1)], {}),
    ("a key differing only by case is refused, not guessed", joined([rec(0), rec(1, Input="the passage")], "\n"),
     [(0, 0)], {"case_variant_key_Input": [2]}),
    ("a lone surrogate is its own reason", joined([rec(0), '{"worker_id": 0, "sample_id": 1, "instruction": '
                                                   '"A\\ud800", "content": "x"}', rec(2)], "\n"),
     [(0, 0), (0, 2)], {"lone_surrogate": [2]}),
    ("an escaped surrogate pair is a character, not a problem",
     joined([rec(0, instruction="Explain \\ud83d\\ude00.")], "\n").replace(b"\\\\u", b"\\u"), [(0, 0)], {}),
    ("an array resynchronises at the next element after a broken one",
     b'[\n  ' + json.dumps(rec(0)).encode() + b',\n  {"worker_id": 0, broken\n  ' + json.dumps(rec(2)).encode()
     + b'\n]\n', [(0, 0), (0, 2)], {"malformed_json": [3]}),
]


@pytest.mark.parametrize("name, content, kept, problems", READERS, ids=[c[0] for c in READERS])
def test_readers_keep_every_good_record_and_count_each_bad_one(tmp_path, name, content, kept, problems):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content)
    records, found, rows, _ = validate_records(path)
    assert [(r["worker_id"], r["sample_id"]) for r in records] == kept
    assert {reason: entry["lines"] for reason, entry in found.by_reason.items()} == problems
    assert rows == len(kept) + found.total


def test_the_corpus_stage_counts_a_lone_surrogate_and_writes_valid_utf8(tmp_path):
    (tmp_path / "data/external").mkdir(parents=True)
    good = [json.dumps(rec(i, content="Okay. Wait.</think>A.")) for i in range(120)]
    good[7] = '{"worker_id": 0, "sample_id": 7, "instruction": "x", "content": "\\udfff</think>"}'
    (tmp_path / "data/external/c.jsonl").write_text("\n".join(good) + "\n")
    p = params_mapping()
    p["data"]["source"] = "data/external/c.jsonl"
    write_params(tmp_path, p)
    proc = run_stage("corpus", tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "metrics/data/corpus.json").read_text())
    assert report["invalid"] == {"lone_surrogate": {"count": 1, "lines": [8]}} and report["rows_valid"] == 119
    assert len((tmp_path / "data/raw/corpus.jsonl").read_bytes().decode("utf-8").splitlines()) == 119


def test_an_output_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"old": 1}\n')

    def rows():
        yield {"a": 1}
        raise KeyboardInterrupt  # the process is stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows())
    assert path.read_text() == '{"old": 1}\n' and os.listdir(tmp_path) == ["out.jsonl"]


# ---- the gate: a reversed ranking never passes ----
def test_a_method_gated_on_accuracy_by_design_still_fails_a_reversed_ranking(tmp_path):
    floors = {"tolerance": 0.1, "no_skill": {"tau": 0.077, "auc_top10": 0.611},
              "by_design": {"m02": {"metrics": ["native.accuracy"], "why": "one bin"}},
              "floors": {"m02": {"native.accuracy": 0.98}}}
    for tau in (-0.29, 0.077, 0.2):
        (tmp_path / "methods").mkdir(exist_ok=True)
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "methods/m02.json").write_text(json.dumps({"tau": tau, "auc_top10": 0.5}))
        (tmp_path / "eval/m02.json").write_text(json.dumps({"native": {"accuracy": 0.99}}))
        expected = [] if tau == 0.2 else [f"m02: tau {tau:.3f} <= 0.077 (the no-skill line)"]
        assert check(tmp_path, floors) == expected


# ---- a stage ends when the process that started it dies ----
CHILD = ("import time; from thinkcount.pipeline.launcher import watch_launchers; watch_launchers(0.1); "
         "print('ready', flush=True); time.sleep(60)")
# A stage as dvc starts it: `import stages` reads the launchers, then the stage module imports for seconds
# (the sleep), during which its shell, had dvc died, would already belong to init.
IMPORTING = "import stages, time; print('ready', flush=True); time.sleep(60)"


def start_stage_under_launcher(code, through_shell, env):
    """A launcher process running `python -c code` (through a shell that stays, if asked); the stage process."""
    child = [sys.executable, "-c", code]
    if through_shell:  # `; true` keeps the shell alive between the launcher and the stage
        child = ["sh", "-c", f"{sys.executable} -c \"{code}\"; true"]
    launcher = subprocess.Popen([sys.executable, "-c", f"import subprocess; subprocess.run({child!r})"],
                                env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert launcher.stdout.readline().strip() == "ready"
    stage = [p for p in psutil.Process(launcher.pid).children(recursive=True) if p.name().startswith("python")
             and "-c" in p.cmdline() and code in p.cmdline()]
    assert len(stage) == 1
    return launcher, stage


@pytest.mark.parametrize("through_shell", [False, True], ids=["direct child", "through a shell that stays"])
def test_a_stage_ends_when_its_launcher_is_killed(through_shell):
    launcher, stage = start_stage_under_launcher(CHILD, through_shell, PYTHON_ENV)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    gone, alive = psutil.wait_procs(stage, timeout=10)
    assert not alive and len(gone) == 1  # the shell, if any, then ends by itself


@pytest.mark.parametrize("dvc_stage, ends", [(True, True), (False, False)], ids=["under dvc", "run by hand"])
def test_a_stage_whose_launcher_dies_while_it_imports_ends(dvc_stage, ends):
    """The launchers are read when the stages package is imported, not after the stage module's imports: a
    chain read after its shell was handed to init would hold only live processes and never fire. Run by hand
    (no DVC_STAGE) a stage does not watch its shell."""
    env = {**PYTHON_ENV, "DVC_STAGE": "train@m01"} if dvc_stage else PYTHON_ENV
    launcher, stage = start_stage_under_launcher(IMPORTING, True, env)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    gone, alive = psutil.wait_procs(stage, timeout=10 if ends else 3)
    for p in alive:
        p.kill()
    assert (len(gone), len(alive)) == ((1, 0) if ends else (0, 1))


# A launcher that has ended (a finished `sleep`) or one still running (this test's own process).
ORPHAN_CHECK = ("import subprocess, sys, psutil; from thinkcount.pipeline.launcher import LAUNCHERS, stop_if_orphaned; "
                "p = subprocess.Popen(['sleep', '5']); ended = psutil.Process(p.pid); p.kill(); p.wait(); "
                "LAUNCHERS[:] = [ended if sys.argv[1] == 'ended' else psutil.Process().parent()]; "
                "stop_if_orphaned(); print('published')")


@pytest.mark.parametrize("launcher, publishes", [("ended", False), ("running", True)])
def test_a_stage_checks_its_launcher_before_publishing_between_the_watchers_looks(launcher, publishes):
    """The watcher thread looks once a second; a small model seals its folder in less, so the train stage
    checks once more just before: an orphan stops there with status 1."""
    proc = subprocess.run([sys.executable, "-c", ORPHAN_CHECK, launcher], env=PYTHON_ENV, capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, "published" in proc.stdout) == ((0, True) if publishes else (1, False))
    assert ("has ended; stopping" in proc.stderr) is not publishes
