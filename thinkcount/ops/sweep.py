"""The seed sweep: the whole pipeline under other seeds (corpus, split and training together) as queued
DVC experiments, summarised per method as the mean and spread of Kendall tau over the seed sets.

    python -m thinkcount sweep run 1 2      # queue one experiment per seed and run the queue (one at a time)
    python -m thinkcount sweep summary      # reports/seed_sweep.md: the workspace run and those experiments

The workspace run (params.yaml's own seeds) is the first seed set, so `make run` stays one seed.
"""
import json
import subprocess
from pathlib import Path

import numpy as np

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import write_json, write_text
from thinkcount.ops.gate import lookup
from thinkcount.pipeline.config import load_params

SEED_KEYS = ("data.seed", "split.seed", "train.seed")
PREFIX = "seeds-"
HEADLINE = paths.METHOD_METRICS + "/"
# The baseline each method is compared with, by its target: does its lead survive a new seed? TF-IDF on the
# methods' own rows for counts (in every sweep run so far); surface counts on the Wait methods' rows for wait_counts.
def queue_command(seed):
    settings = [arg for key in SEED_KEYS for arg in ("-S", f"{key}={seed}")]
    return ["dvc", "exp", "run", "--queue", "--name", f"{PREFIX}{seed}", *settings]


def run(seeds):
    load_params()  # names are checked before DVC renders them into a command
    for seed in seeds:
        subprocess.run(queue_command(seed), check=True)
    subprocess.run(["dvc", "exp", "run", "--run-all", "-j", "1"], check=True)


def seeds_of(params):
    values = params["params.yaml"]["data"]
    return tuple(lookup(values, key) for key in SEED_KEYS)


def runs(show):
    """[(name, (data, split, train seeds), {method: tau or None})] for the workspace and then each finished
    sweep experiment in order of its seeds, read from `dvc exp show --json --all-commits` (newest commit
    first, so a seed set rerun on a newer commit counts once, with its newest run). One still queued or
    running is left out: its workspace holds the baseline's metrics until its own stages overwrite them."""
    found = {}
    for entry in show:
        if entry["rev"] == "workspace":
            found["workspace"] = entry["data"]
        for experiment in entry.get("experiments") or []:
            if (experiment.get("executor") or {}).get("state", "success") != "success":
                continue
            for rev in experiment.get("revs") or []:
                if (rev.get("name") or "").startswith(PREFIX) and rev.get("data"):
                    found.setdefault(rev["name"], rev["data"])
    read = [(name, seeds_of(data["params"]), taus(data.get("metrics") or {})) for name, data in found.items()]
    return sorted([run for run in read if run[2]], key=lambda run: (run[0] != "workspace", run[1]))


def taus(metrics):
    out = {}
    for path, value in metrics.items():
        if path.startswith(HEADLINE) and "data" in value:
            out[Path(path).stem] = value["data"]["tau"]
    return out


def summarise(found):
    """Per method: tau in each run (None when undefined), mean, sample sd, min and max over the defined ones."""
    methods = sorted({m for _, _, t in found for m in t})
    rows = []
    for method in methods:
        values = [t.get(method) for _, _, t in found]
        defined = np.array([v for v in values if v is not None], dtype=float)
        rows.append({"method": method, "taus": values, "n": len(defined),
                     "mean": float(defined.mean()) if len(defined) else None,
                     "sd": float(defined.std(ddof=1)) if len(defined) > 1 else None,
                     "min": float(defined.min()) if len(defined) else None,
                     "max": float(defined.max()) if len(defined) else None})
    return best_first(rows)


def best_first(rows):
    """Highest mean first; an undefined mean (no defined tau) last, as in the comparison."""
    return sorted(rows, key=lambda r: (r["mean"] is None, -(r["mean"] or 0)))


def references_by_target(summary=paths.SUMMARY):
    """{method: its reference}, as the workspace comparison chose it: the best baseline on the method's target."""
    rows = json.loads(Path(summary).read_text())["rows"]
    return {r["method"]: r["vs_best_baseline"]["reference"] for r in rows
            if r.get("kind") is None and r.get("vs_best_baseline")}


def differences(found, references):
    """Per method in references ({method: baseline}): tau minus its reference's tau in each run (None where
    either is undefined), their mean and in how many runs the method was ahead."""
    rows = []
    for method in sorted(m for m in references if any(m in t for _, _, t in found)):
        reference = references[method]
        diffs = [None if t.get(method) is None or t.get(reference) is None else t[method] - t[reference]
                 for _, _, t in found]
        defined = [d for d in diffs if d is not None]
        rows.append({"method": method, "reference": reference, "diffs": diffs, "n": len(defined),
                     "mean": float(np.mean(defined)) if defined else None, "ahead": sum(d > 0 for d in defined)})
    return best_first(rows)


def fmt(value):
    return "undefined" if value is None else f"{value:.3f}"


def signed(value):
    return "undefined" if value is None else f"{value:+.3f}"


def markdown(found, rows):
    names = [f"{name} ({'/'.join(map(str, seeds))})" for name, seeds, _ in found]
    lines = ["| method | " + " | ".join(names) + " | mean | sd | min - max |",
             "|---|" + "---|" * (len(names) + 3)]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(fmt(v) for v in r["taus"])
                     + f" | {fmt(r['mean'])} | {fmt(r['sd'])} | {fmt(r['min'])} - {fmt(r['max'])} |")
    return "\n".join(lines) + "\n"


def differences_markdown(found, diffs):
    lines = ["Tau minus the reference's in the same run (the baseline on the method's target), and in how many "
             "runs the method was ahead:", "",
             "| method | reference | " + " | ".join(name for name, _, _ in found) + " | mean | ahead |",
             "|---|---|" + "---|" * (len(found) + 2)]
    for r in diffs:
        lines.append(f"| {r['method']} | {r['reference']} | " + " | ".join(signed(d) for d in r["diffs"])
                     + f" | {signed(r['mean'])} | {r['ahead']} of {r['n']} |")
    return "\n".join(lines) + "\n"


def summary(out=paths.SEED_SWEEP):
    show = json.loads(subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], check=True, capture_output=True,
                                     text=True).stdout)
    found = runs(show)
    if len(found) < 2:
        raise UserError("no sweep experiments found; run `python -m thinkcount sweep run 1 2` first.")
    rows, diffs = summarise(found), differences(found, references_by_target())
    header = (f"Kendall tau per seed set (data.seed/split.seed/train.seed), {len(found)} runs; "
              "from `python -m thinkcount sweep summary`.\n\n")
    text = header + markdown(found, rows) + "\n" + differences_markdown(found, diffs)
    write_text(out, text)
    write_json(Path(out).with_suffix(".json"), {"runs": [[n, list(s)] for n, s, _ in found], "methods": rows,
                                                "vs_reference": diffs})
    print(text)


def main(argv):
    if argv[:1] == ["run"] and len(argv) > 1:
        run([int(s) for s in argv[1:]])
    elif argv == ["summary"]:
        summary()
    else:
        raise UserError("usage: python -m thinkcount sweep run SEED [SEED ...] | summary")
