"""Drift: does the served predictor still rank this deployment's requests? Over a window of completed requests,
Kendall tau-b between predicted and realised effort (expected counts against keyword counts, complete traces only)
and the median ratio of realised to expected counts (1 when the calibration holds).

    python -m thinkcount drift LOG... [--window-seconds 3600] [--threshold 0.1] [--min-requests 30]

prints these per model and time window of the traffic log (files or folders), and exits 3 when the newest window
of any model with enough requests is below the threshold (so a cron job or CI step can act on it). The service
exports the same figures over the last --drift-window requests per model in /metrics."""
import argparse
import math
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from thinkcount import UserError
from thinkcount.core.jsonl import Problems, read_json_values

DRIFTED = 3  # exit status when the newest window is below the threshold
MIN_PAIRS = 10  # fewer pairs than this give no tau (undefined, not 0)


def usable(record):
    """(expected counts, realised counts) of a log record that was scored and whose trace completed, else None."""
    prediction = record.get("prediction") if isinstance(record, dict) else None
    if not isinstance(prediction, dict) or not isinstance(record.get("counts"), int) or record.get("truncated") \
            or record.get("error") or record.get("status") != 200:
        return None
    expected = prediction.get("expected_counts")
    return (float(expected), record["counts"]) if isinstance(expected, (int, float)) else None


def window_figures(pairs):
    """{requests, tau, median_ratio} of (expected, realised) pairs; tau is None (undefined) below MIN_PAIRS pairs
    or when either side is constant."""
    expected = np.array([p[0] for p in pairs], dtype=float)
    realised = np.array([p[1] for p in pairs], dtype=float)
    tau = None
    if len(pairs) >= MIN_PAIRS and np.ptp(expected) > 0 and np.ptp(realised) > 0:
        tau = float(kendalltau(expected, realised).statistic)
    ratio = float(np.median(realised / np.maximum(expected, 1.0))) if len(pairs) else None
    return {"requests": len(pairs), "tau": tau, "median_ratio": ratio}


class DriftWindows:
    """The last `size` usable requests per model, and their figures."""

    def __init__(self, size):
        self.windows = defaultdict(lambda: deque(maxlen=size))

    def add(self, record):
        """Add a log record; returns (model, figures) when it was usable, else None."""
        pair = usable(record)
        if pair is None:
            return None
        model = record.get("model") or ""
        self.windows[model].append(pair)
        return model, window_figures(self.windows[model])


def log_records(paths):
    """Every record of the log files (folders are read for traffic-*.jsonl), with bad lines counted."""
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("traffic-*.jsonl")) if p.is_dir() else [p])]
    if not files:
        raise UserError(f"no traffic log files in {', '.join(map(str, paths))}.")
    problems, records = Problems(), []
    for path in files:
        records += [r for _, r in read_json_values(path, problems) if isinstance(r, dict)]
    return records, problems


def windows_over_time(records, seconds):
    """{model: [(window start, figures), ...]} over consecutive windows of finish time."""
    by_model = defaultdict(lambda: defaultdict(list))
    for record in records:
        pair = usable(record)
        if pair is not None and isinstance(record.get("finish"), (int, float)):
            start = math.floor(record["finish"] / seconds) * seconds
            by_model[record.get("model") or ""][start].append(pair)
    return {model: [(start, window_figures(pairs)) for start, pairs in sorted(windows.items())]
            for model, windows in sorted(by_model.items())}


def fmt(value):
    return "undefined" if value is None else f"{value:.3f}"


def run(args):
    records, problems = log_records(args.logs)
    if problems.total:
        print(f"skipped {problems.total} unreadable lines: {problems.summary()}")
    table = windows_over_time(records, args.window_seconds)
    drifted = []
    for model, rows in table.items():
        print(f"model {model or '(none)'}")
        for start, figures in rows:
            print(f"  {start:.0f}  requests {figures['requests']:5d}  tau {fmt(figures['tau'])}  "
                  f"realised/expected {fmt(figures['median_ratio'])}")
        newest = next((f for _, f in reversed(rows) if f["requests"] >= args.min_requests), None)
        if newest and newest["tau"] is not None and newest["tau"] < args.threshold:
            drifted.append(f"{model or '(none)'} (tau {newest['tau']:.3f})")
    if drifted:
        print(f"drift: below tau {args.threshold} on the newest window of at least {args.min_requests} requests: "
              + ", ".join(drifted))
        return DRIFTED
    print(f"drift: no model below tau {args.threshold} on its newest window of at least {args.min_requests} requests")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount drift", description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", help="traffic log files or folders")
    parser.add_argument("--window-seconds", type=float, default=3600)
    parser.add_argument("--threshold", type=float, default=0.1, help="tau below which the predictor has drifted")
    parser.add_argument("--min-requests", type=int, default=30, help="requests a window needs to be judged")
    args = parser.parse_args(argv)
    if args.window_seconds <= 0 or args.min_requests < 1:
        raise UserError("--window-seconds must be above 0 and --min-requests at least 1.")
    return run(args)
