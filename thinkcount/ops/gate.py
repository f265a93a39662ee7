"""CI regression gate: the CI profile's metrics against committed floors.

    python -m thinkcount gate METRICS_ROOT FLOORS_JSON               # check; exit 1 on any failure
    python -m thinkcount gate --regenerate METRICS_ROOT FLOORS_JSON  # write floors from a run

METRICS_ROOT is a run's metrics/ folder (headlines in methods/, details in eval/). A method fails when
its metrics are missing, it has no floor, its tau is undefined (constant scores), or a floored metric
is below its floor minus the tolerance or below the no-skill line: two standard errors above chance
for the run's number of test prompts, so a model with no skill fails whatever its floor. Methods poor
by design (listed under by_design with the reason) are floored on the metrics named there instead: native
metrics (eval paths such as native.accuracy), or one of the ranking metrics, which keeps its no-skill line.
Every method and baseline, by design or not, fails with tau at or below the no-skill line: a reversed
ranking never passes on accuracy. The one exception is a by_design entry with `ranks: false` and its reason:
a degenerate labeling or a control whose point is to carry almost no signal; its tau must still be defined.
`dvc metrics diff` exits 0 in all these cases, so it cannot be the gate.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

from thinkcount.core.jsonl import write_json

RANKING_METRICS = ("tau", "auc_top10")
TOLERANCE = 0.1
TOP_SHARE = 0.1


def no_skill_lines(n):
    """Two standard errors above chance for n test prompts: Kendall tau under independence, and the
    ROC-AUC of flagging the top 10% (Hanley-McNeil at AUC 0.5)."""
    tau_se = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    positives = max(round(n * TOP_SHARE), 1)
    auc_se = math.sqrt((n + 1) / (12 * positives * (n - positives)))
    return {"tau": round(2 * tau_se, 3), "auc_top10": round(0.5 + 2 * auc_se, 3)}


def lookup(metrics, dotted):
    for part in dotted.split("."):
        if not isinstance(metrics, dict) or part not in metrics:
            return None
        metrics = metrics[part]
    return metrics


def read_run(root):
    """{name: {"headline": ..., "eval": ...}} for every method and baseline of a run."""
    root = Path(root)
    run = {}
    for path in sorted((root / "methods").glob("*.json")):
        detail = root / "eval" / path.name
        run[path.stem] = {"headline": json.loads(path.read_text()),
                          "eval": json.loads(detail.read_text()) if detail.is_file() else {}}
    return run


def check(root, floors):
    """Failure messages (empty when the gate passes)."""
    run, failures = read_run(root), []
    for name in sorted(set(run) | set(floors["floors"])):
        if name not in run:
            failures.append(f"{name}: no metrics in {root}/methods")
        elif name not in floors["floors"]:
            failures.append(f"{name}: no floor; regenerate them (make ci-floors)")
        else:
            failures += check_method(name, run[name], floors)
    return failures


def check_method(name, metrics, floors):
    tau, line = metrics["headline"].get("tau"), floors["no_skill"]["tau"]
    if tau is None:
        return [f"{name}: tau undefined (constant scores)"]
    ranks = floors["by_design"].get(name, {}).get("ranks", True)
    # Whatever a method is floored on, a ranking no better than chance (or reversed) fails, unless it is listed
    # as one that does not rank.
    failures = [] if tau > line or not ranks else [f"{name}: tau {tau:.3f} <= {line:.3f} (the no-skill line)"]
    for key, floor in floors["floors"][name].items():
        if key == "tau" and failures:
            continue  # already failed on tau
        value = metric(metrics, key)
        line = floors["no_skill"].get(key)
        bound = max(floor - floors["tolerance"], line if line is not None else -math.inf)
        if not isinstance(value, (int, float)):
            failures.append(f"{name}: {key} missing")
        elif value < bound:
            why = "the no-skill line" if line is not None and bound == line else f"floor {floor:.3f} - tolerance"
            failures.append(f"{name}: {key} {value:.3f} < {bound:.3f} ({why})")
    return failures


def metric(metrics, key):
    """A ranking metric from the headline, anything else by its path in the evaluation details."""
    return lookup(metrics["headline"], key) if key in RANKING_METRICS else lookup(metrics["eval"], key)


def regenerate(root, floors_path):
    """Floors from a run: its tau and top-10% AUC per method (native metrics for by_design ones), with the
    no-skill lines for its test size and the commit it came from. Refuses a floor below the no-skill line."""
    old = json.loads(Path(floors_path).read_text()) if Path(floors_path).is_file() else {}
    by_design = old.get("by_design", {})
    run = read_run(root)
    n = next(m["eval"]["yardstick"]["all"]["n"] for m in run.values() if m["eval"].get("yardstick"))
    lines = no_skill_lines(n)
    floors = {}
    for name, metrics in run.items():
        if name in by_design:
            floors[name] = {key: round(metric(metrics, key), 3) for key in by_design[name]["metrics"]}
            ranks = by_design[name].get("ranks", True)
            if ranks and floors[name].get("tau", metrics["headline"]["tau"]) <= lines["tau"]:
                raise SystemExit(f"gate: {name} has tau {metrics['headline']['tau']}, at or below the no-skill line "
                                 f"{lines['tau']}: even a method gated by design on other metrics must rank.")
            continue
        floors[name] = {key: round(metric(metrics, key), 3) for key in RANKING_METRICS}
        below = [k for k in RANKING_METRICS if floors[name][k] < lines[k]]
        if below:
            raise SystemExit(f"gate: {name} has {', '.join(f'{k} {floors[name][k]}' for k in below)}, below the "
                             f"no-skill line {lines}: the CI profile shows no skill for it; train it more there, or "
                             "list it under by_design with the reason.")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {"note": "Written by `make ci-floors` from the CI profile's run (make ci-repro); the gate fails below "
                   "floor - tolerance or below the no-skill line.",
           "commit": commit, "n_test": n, "tolerance": TOLERANCE, "no_skill": lines, "by_design": by_design,
           "floors": floors}
    write_json(floors_path, out)
    return out


def main(argv):
    if argv[:1] == ["--regenerate"] and len(argv) == 3:
        out = regenerate(argv[1], argv[2])
        print(f"gate: wrote {len(out['floors'])} floors to {argv[2]} (commit {out['commit'][:10]})")
        return 0
    if len(argv) != 2:
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    floors = json.loads(Path(argv[1]).read_text())
    failures = check(argv[0], floors)
    for failure in failures:
        print(f"gate: FAIL {failure}")
    print(f"gate: {len(floors['floors']) - len({f.split(':')[0] for f in failures})} of {len(floors['floors'])} "
          f"methods and baselines pass (tolerance {floors['tolerance']}, no-skill lines {floors['no_skill']})")
    return 1 if failures else 0
