"""CI regression gate: compare the CI profile's metrics with committed floors.

Usage: python -m thinkcount.gate METRICS_DIR FLOORS_JSON
Exits 1 when a metrics file is missing or a metric fell more than the tolerance below its floor
(`dvc metrics diff` exits 0 in both cases, so it cannot be the gate).
"""
import json
import sys
from pathlib import Path


def lookup(metrics, dotted):
    for part in dotted.split("."):
        if not isinstance(metrics, dict) or part not in metrics:
            return None
        metrics = metrics[part]
    return metrics


def check(metrics_dir, floors):
    """Return a list of failure messages (empty when the gate passes)."""
    failures = []
    tolerance = floors["tolerance"]
    for name, expected in floors["floors"].items():
        path = Path(metrics_dir) / f"{name}.json"
        if not path.is_file():
            failures.append(f"{path}: missing")
            continue
        metrics = json.loads(path.read_text())
        for key, floor in expected.items():
            value = lookup(metrics, key)
            if not isinstance(value, (int, float)):
                failures.append(f"{name}: {key} missing")
            elif value < floor - tolerance:
                failures.append(f"{name}: {key} {value:.3f} < floor {floor:.3f} - tolerance {tolerance}")
    return failures


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    floors = json.loads(Path(argv[1]).read_text())
    failures = check(argv[0], floors)
    for failure in failures:
        print(f"gate: FAIL {failure}")
    checked = sum(len(v) for v in floors["floors"].values())
    print(f"gate: {checked - len(failures)} of {checked} metrics at or above their floors (tolerance {floors['tolerance']})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
