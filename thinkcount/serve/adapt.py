"""Adapt a trained model to a deployment from its own traces: a light head over the base model's prediction, the
prompt's surface counts and its frozen embedding (thinkcount/serve/head.py), its mix chosen by cross-validation by
prompt on those traces.

    python -m thinkcount adapt --base models/m13_rank --traces data/external/served/traffic-*.jsonl --out models/adapted

Traces are any files ingest reads: public exports, canonical records, the proxy's traffic log. A truncated trace
counts as a lower bound: its target is its own counts or what the head predicts for it, whichever is larger (two
rounds). The head is fitted per answering model where a model has --per-model-min traces, pooled otherwise. The
output is a sealed model folder, the base's files plus head.json and adapt.json (base, traces with their sha256,
count and time range, settings, and every mix's cross-validated tau), that Predictor.load and the service load like
any other. Fewer usable traces than --min-traces is one sentence and exit 2."""
import argparse
import hashlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thinkcount import UserError
from thinkcount.core.jsonl import write_json
from thinkcount.data.counting import count_keywords, keyword_pattern, prompt_text, rules_from_params
from thinkcount.data.ingest import ingest_file
from thinkcount.evaluate.metrics import tau_within
from thinkcount.methods import modelfolder
from thinkcount.serve.head import EMBEDDER, MIXES, POOLED, AdaptedHead, design, embed, fit_mix, mix_score
from thinkcount.serve.naming import read_model_map
from thinkcount.serve.predict import Predictor

TOO_FEW = 2  # exit status when there are fewer usable traces than --min-traces
ALPHAS = (1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried with each mix (the embedding wants the strong ones)


@dataclass(frozen=True)
class AdaptSettings:
    min_traces: int = 25        # fewer usable traces: refused
    per_model_min: int = 100    # traces a model needs for a head of its own
    folds: int = 5              # cross-validation folds by prompt
    seed: int = 0               # seed of the folds
    censored_rounds: int = 2    # refits that raise truncated traces' targets to the head's prediction
    min_prompts: int = 20       # distinct prompts below which the base is kept (too few to tell mixes apart)
    embedder: str = EMBEDDER    # the frozen encoder the head reads prompts with (None: surface counts only)


@dataclass(frozen=True)
class OwnTraces:
    """A deployment's usable traces: prompt texts, answering models, keyword counts, truncation, prompt ids."""
    prompts: list
    models: list
    counts: np.ndarray
    truncated: np.ndarray
    groups: np.ndarray
    times: list

    def subset(self, rows):
        """The traces of rows: indices or a boolean mask."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        return OwnTraces([self.prompts[i] for i in rows], [self.models[i] for i in rows], self.counts[rows],
                         self.truncated[rows], self.groups[rows], [self.times[i] for i in rows])


def read_traces(files, pattern):
    """(OwnTraces, {reason: count} skipped) from trace files; a file that cannot be read is one sentence."""
    records, skipped = [], {}
    for path in files:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such trace file.")
        got, problems, _ = ingest_file(path)
        if not got and problems.total:
            raise UserError(f"{path}: no record in it could be read ({problems.summary()}).")
        records += got
        for reason, entry in problems.by_reason.items():
            skipped[reason] = skipped.get(reason, 0) + entry["count"]
    return own_traces(records, pattern), skipped


def own_traces(records, pattern):
    """OwnTraces of ingested records (instruction, input, content, model, truncated, prompt_id, time)."""
    return OwnTraces([prompt_text(r["instruction"], r["input"]) for r in records],
                     [r.get("model") or "" for r in records],
                     np.array([count_keywords(r["content"], pattern) for r in records], float),
                     np.array([bool(r.get("truncated")) for r in records], bool),
                     np.array([r["prompt_id"] for r in records]), [r.get("time") for r in records])


def folds_by_prompt(groups, folds, seed):
    """A fold number per row; every row of one prompt in one fold."""
    ids, codes = np.unique(groups, return_inverse=True)
    assignment = np.random.default_rng(seed).permutation(len(ids)) % folds
    return assignment[codes]


def censored_target(mix, x, y, truncated, alpha, rounds):
    """log1p targets where a truncated trace's target is raised to the head's prediction when that is larger."""
    target = np.log1p(y)
    for _ in range(rounds if truncated.any() and mix != "base" else 0):
        ridge = fit_mix(mix, x, target, alpha)
        target = np.where(truncated, np.maximum(np.log1p(y), mix_score(mix, ridge, x)), np.log1p(y))
    return target


def cross_validated(x, traces, settings, mixes=MIXES):
    """{(mix, alpha): [tau within model on each fold by prompt, None where undefined]} on the complete traces of
    each held-out fold."""
    fold = folds_by_prompt(traces.groups, settings.folds, settings.seed)
    results = {}
    for mix in mixes:
        for alpha in ALPHAS if mix != "base" else (None,):
            taus = []
            for k in range(settings.folds):
                train, test = fold != k, (fold == k) & ~traces.truncated
                if test.sum() < 2 or train.sum() < 2:
                    taus.append(None)
                    continue
                target = censored_target(mix, x[train], traces.counts[train], traces.truncated[train], alpha,
                                         settings.censored_rounds)
                taus.append(tau_within(mix_score(mix, fit_mix(mix, x[train], target, alpha), x[test]),
                                       traces.counts[test], np.asarray(traces.models)[test]))
            results[(mix, alpha)] = taus
    return results


def mean_of(taus):
    known = [t for t in taus if t is not None]
    return float(np.mean(known)) if known else None


def beats(taus, reference):
    """Whether taus beat reference's on the same folds by more than one standard error of the paired difference."""
    diff = np.array([t - r for t, r in zip(taus, reference) if t is not None and r is not None])
    return len(diff) > 1 and diff.mean() > diff.std(ddof=1) / np.sqrt(len(diff))


def choose(figures, mixes):
    """(mix, alpha) of the best mean cross-validated tau. Where the base is among the mixes, a fitted mix must beat
    it by more than a standard error (the base stays where the own traces cannot tell them apart: with few
    prompts the best of many fitted mixes is mostly the luckiest)."""
    fitted = {key: taus for key, taus in figures.items() if mean_of(taus) is not None}
    if "base" in mixes:
        fitted = {key: taus for key, taus in fitted.items()
                  if key == ("base", None) or beats(taus, figures[("base", None)])}
    if not fitted:
        return (mixes[0], ALPHAS[-1] if mixes[0] != "base" else None)
    return max(fitted, key=lambda key: mean_of(fitted[key]))


def fit_head(x, traces, mix, alpha, settings):
    """The chosen mix fitted on all traces: one ridge per model with enough traces, one pooled."""
    models, sizes = np.unique(traces.models, return_counts=True)
    own = [m for m, n in zip(models, sizes) if n >= settings.per_model_min and m]
    ridges = {}
    for key in own + [POOLED]:
        rows = np.array([m == key for m in traces.models]) if key else np.ones(len(traces.models), bool)
        target = censored_target(mix, x[rows], traces.counts[rows], traces.truncated[rows], alpha,
                                 settings.censored_rounds)
        ridges[key] = fit_mix(mix, x[rows], target, alpha)
    return AdaptedHead(mix, ridges, settings.embedder)


def adapt(base, files, out, settings=AdaptSettings(), counts_params="params.yaml", model_map=None):
    """Fit, seal and publish an adapted folder at out from trace files; returns its provenance (adapt.json)."""
    started = time.time()
    traces, skipped = read_traces(files, keyword_pattern(*rules_from_params(counts_params)))
    if len(traces.prompts) < settings.min_traces:
        raise TooFew(f"{len(traces.prompts)} usable traces in {len(files)} file(s) (skipped: {skipped or 'none'}); "
                     f"adapt needs at least {settings.min_traces}.")
    head, provenance = fit(Predictor.load(base, device="cpu"), traces, settings, read_model_map(model_map))
    provenance.update(base=str(base), base_version=modelfolder.version(base))
    provenance["traces"].update(files={str(f): sha256(f) for f in files}, skipped=skipped)
    provenance["fit_seconds"] = round(time.time() - started, 2)
    write_folder(base, out, head, provenance)
    return provenance


def fit(predictor, traces, settings, mapping=None):
    """(AdaptedHead, provenance) fitted on traces over a loaded base predictor."""
    names = [(mapping or {}).get(m, m) or "unknown model" for m in traces.models]
    base_records = predictor.predict(traces.prompts, model=names if predictor.config.model_token else None)
    base_log = np.log1p([r["expected_counts"] for r in base_records])
    return fit_over(base_log, traces, settings, embed(settings.embedder, traces.prompts))


def fit_over(base_log, traces, settings, embeddings, mixes=MIXES):
    """(AdaptedHead, provenance) fitted on traces over the base's log(1 + expected counts) for them; embeddings:
    the frozen encoder's, one row per trace (None without). mixes narrows the choice (the learning curves' rows)."""
    return fit_design(design(traces.prompts, base_log, embeddings), traces, settings, mixes)


def fit_design(x, traces, settings, mixes=MIXES, figures=None):
    """fit_over on the head's design rows x (thinkcount/serve/head.py's design), one per trace; figures: the
    cross-validation already run on them (cross_validated over these mixes or more), to reuse."""
    if "base" in mixes and len(set(traces.groups)) < settings.min_prompts:
        mixes = ("base",)
    if figures is None:
        figures = cross_validated(x, traces, settings, mixes)
    figures = {key: taus for key, taus in figures.items() if key[0] in mixes}
    mix, alpha = choose(figures, mixes)
    head = fit_head(x, traces, mix, alpha, settings)
    return head, {"mix": mix, "alpha": alpha, "cv_tau": mean_of(figures[(mix, alpha)]) if figures else None,
                  "cv": [{"mix": m, "alpha": a, "tau": mean_of(t)} for (m, a), t in figures.items()],
                  "traces": {"usable": len(traces.prompts), "truncated": int(traces.truncated.sum()),
                             "time_range": time_range(traces.times)},
                  "models_with_own_head": sorted(k for k in head.ridges if k != POOLED),
                  "settings": settings.__dict__}


class TooFew(UserError):
    """Too few usable traces to adapt from."""


def time_range(times):
    known = [t for t in times if isinstance(t, (int, float))]
    return [min(known), max(known)] if known else None


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_folder(base, out, head, provenance):
    """The base's files and the head, sealed under a temporary name, then renamed onto out."""
    out = Path(out)
    partial = modelfolder.partial_path(out)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(base, partial)
    (partial / modelfolder.MANIFEST).unlink()
    head.save(partial)
    write_json(partial / "adapt.json", provenance)
    manifest = modelfolder.read_manifest(Path(base) / modelfolder.MANIFEST)
    config = modelfolder.read_label_config(partial / modelfolder.LABEL_CONFIG)
    modelfolder.seal(partial, manifest["method"], config)
    modelfolder.publish(partial, out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount adapt", description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the trained model folder to adapt, e.g. models/m13_rank")
    parser.add_argument("--traces", nargs="+", required=True, help="trace files (any format ingest reads)")
    parser.add_argument("--out", required=True, help="the adapted model folder to write")
    parser.add_argument("--min-traces", type=int, default=AdaptSettings.min_traces)
    parser.add_argument("--per-model-min", type=int, default=AdaptSettings.per_model_min)
    parser.add_argument("--folds", type=int, default=AdaptSettings.folds)
    parser.add_argument("--seed", type=int, default=AdaptSettings.seed)
    parser.add_argument("--counts-params", default="params.yaml", help="the params file whose counts.keywords count")
    parser.add_argument("--model-map", help="served model name -> the base's training name (as the proxy's)")
    parser.add_argument("--embedder", default=EMBEDDER,
                        help="the frozen encoder the head reads prompts with (a source as in params.yaml's "
                             "encoders), or none for surface counts only")
    args = parser.parse_args(argv)
    if args.min_traces < 2 or args.per_model_min < 1 or args.folds < 2:
        raise UserError("--min-traces must be at least 2, --per-model-min at least 1 and --folds at least 2.")
    settings = AdaptSettings(args.min_traces, args.per_model_min, args.folds, args.seed,
                             embedder=None if args.embedder == "none" else args.embedder)
    try:
        provenance = adapt(args.base, args.traces, args.out, settings, args.counts_params, args.model_map)
    except TooFew as e:
        print(f"error: {e}", file=sys.stderr)
        return TOO_FEW
    print(f"adapt: {provenance['traces']['usable']} traces; cross-validated tau by mix:")
    for c in provenance["cv"]:
        strength = "" if c["alpha"] is None else f", alpha {c['alpha']:g}"
        print(f"  {c['mix']}{strength}: {'undefined' if c['tau'] is None else format(c['tau'], '.3f')}")
    print(f"adapt: chose {provenance['mix']} -> {args.out} ({provenance['fit_seconds']} s)")
    return 0
