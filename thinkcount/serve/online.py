"""Online adaptation in the proxy: a background worker refits a head from the traffic log and proposes it as a
challenger; it replaces the serving head (the champion) only if it ranks the newest window of traffic better.

A refit reads the newest `window` records of the log (a bounded deque: memory stays flat however long the service
runs), keeps those with a prompt and a trace, and holds out the newest `holdout` share of their prompts (by the
first time each was asked). The challenger is fitted on the rest over the original base model (never a head over
a head, thinkcount/serve/adapt.py); champion and challenger then rank the held-out requests, and the challenger is
swapped in only when its tau beats the champion's by more than `margin`. Otherwise it is dropped and counted. A
refit that fails or takes longer than `timeout` leaves the serving head as it is. Refits are triggered every
`every` logged requests, every `interval` seconds, or by the drift alarm (the champion's window tau below the
drift threshold); an admin may pin the head (no swaps) or roll back to the previous one."""
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from thinkcount.data.counting import keyword_pattern
from thinkcount.data.ingest import to_record
from thinkcount.serve.adapt import AdaptSettings, fit, own_traces, write_folder
from thinkcount.serve.drift import MIN_PAIRS
from thinkcount.serve.traffic import PREFIX


@dataclass(frozen=True)
class OnlineSettings:
    every: int | None = None      # refit after this many logged requests
    interval: float | None = None  # ... or this many seconds
    window: int = 5000            # newest log records a refit reads at most
    holdout: float = 0.2          # newest share of their prompts that judges champion against challenger
    margin: float = 0.0           # tau the challenger must gain over the champion to replace it
    timeout: float = 300.0        # a refit running longer is abandoned (the serving head stays)
    min_traces: int = 50          # usable records a refit needs (train and held-out together)


def newest_records(folder, limit):
    """The newest `limit` records of the traffic log in folder, oldest first (a bounded deque over its lines)."""
    newest = deque(maxlen=limit)
    for path in sorted(Path(folder).glob(f"{PREFIX}*.jsonl")):
        with open(path, encoding="utf-8", errors="replace") as f:
            newest.extend(f)
    records = []
    for line in newest:
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill; the writer cuts it at its next start
        if isinstance(value, dict):
            records.append(value)
    return records


def usable(records, pattern):
    """OwnTraces of log records with a prompt and a complete or truncated trace, by ingest's rules."""
    kept = []
    for record in records:
        canonical, _ = to_record(record)
        if canonical is not None:
            kept.append(canonical)
    return own_traces(kept, pattern)


def newest_prompts(traces, share):
    """(train rows, held-out rows): the held-out rows are those of the newest `share` of prompts by first time."""
    first = {}
    for i, (group, when) in enumerate(zip(traces.groups, traces.times)):
        first.setdefault(group, (when or 0.0, i))
    order = sorted(first, key=first.get)
    held = set(order[len(order) - max(1, int(round(share * len(order)))):])
    test = np.array([g in held for g in traces.groups])
    return ~test, test & ~traces.truncated


def judged_tau(predictor, traces):
    """A predictor's Kendall tau on traces (None where undefined)."""
    names = [m or "unknown model" for m in traces.models]
    scores = [r["score"] for r in predictor.predict(traces.prompts, model=names if predictor.config.model_token
                                                    else None)]
    tau = kendalltau(scores, traces.counts).statistic
    return None if np.isnan(tau) else float(tau)


def challenge(champion_tau, challenger_tau, margin):
    """Whether the challenger replaces the champion: only with a defined tau above the champion's plus margin."""
    if challenger_tau is None:
        return False
    return champion_tau is None or challenger_tau > champion_tau + margin


class OnlineAdapter:
    """The refits of one service: which head serves, its history, and what each refit decided."""

    def __init__(self, base, log_folder, heads_folder, settings, keywords, case_sensitive):
        self.base, self.log_folder, self.heads = str(base), log_folder, Path(heads_folder)
        self.settings, self.pattern = settings, keyword_pattern(keywords, case_sensitive)
        self.history = [self.base]   # the folders served, the current one last
        self.pinned = False
        self.refits = 0
        self.serving_since, self.serving_traces = time.time(), 0
        self.running = threading.Lock()  # a refit abandoned at its time-out may still run: never two at once

    def refit(self, champion):
        """Fit a challenger on the log's newest window and judge it against the champion predictor. Returns
        {decision: swap | refused | too_few | busy, champion_tau, challenger_tau, folder}; runs in a worker thread."""
        if not self.running.acquire(blocking=False):
            return {"decision": "busy"}
        try:
            return self.fit_and_judge(champion)
        finally:
            self.running.release()

    def fit_and_judge(self, champion):
        from thinkcount.serve.predict import Predictor  # torch and transformers, as the service loads them
        traces = usable(newest_records(self.log_folder, self.settings.window), self.pattern)
        train, test = newest_prompts(traces, self.settings.holdout)
        if len(traces.prompts) < self.settings.min_traces or train.sum() < 2 * MIN_PAIRS or test.sum() < MIN_PAIRS:
            return {"decision": "too_few", "usable": len(traces.prompts)}
        base = Predictor.load(self.base, device="cpu")
        settings = AdaptSettings(min_traces=2 * MIN_PAIRS, per_model_min=AdaptSettings.per_model_min)
        head, provenance = fit(base, traces.subset(train), settings)
        challenger = Predictor(base.model, base.tokenizer, base.config, head)
        held = traces.subset(test)
        champion_tau, challenger_tau = judged_tau(champion, held), judged_tau(challenger, held)
        result = {"champion_tau": champion_tau, "challenger_tau": challenger_tau, "usable": len(traces.prompts),
                  "train": int(train.sum()), "held_out": int(test.sum())}
        if not challenge(champion_tau, challenger_tau, self.settings.margin) or self.pinned:
            return {**result, "decision": "refused"}
        self.refits += 1
        folder = self.heads / f"head-{self.refits:04d}"
        provenance.update(base=self.base, online={**result, "log": str(self.log_folder)})
        write_folder(self.base, folder, head, provenance)
        return {**result, "decision": "swap", "folder": str(folder), "train_traces": int(train.sum())}

    def swapped(self, folder, traces):
        self.history.append(str(folder))
        self.serving_since, self.serving_traces = time.time(), traces

    def previous(self):
        """The folder served before the current one, for a rollback (None when there is none)."""
        return self.history[-2] if len(self.history) > 1 else None

    def rolled_back(self):
        self.history.pop()
        self.serving_since, self.serving_traces = time.time(), 0
