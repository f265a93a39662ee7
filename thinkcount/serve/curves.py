"""Learning curves: how many of its own traces a deployment needs before `adapt` is worth serving.

Each source of the corpus takes its turn as the deployment. The prior is fitted on every other source: a ridge over
the prompt's surface counts and frozen embedding (the head's inputs, thinkcount/serve/head.py), its strength chosen
by leave-one-source-out among those sources. The deployment's prompts are split in halves; k of the first half's
traces (a deployment's first k requests) are what it has, the second half's complete traces are the test. For each
k the rows are:
  prompt length  the prompt's characters: the floor, no fit
  prior          the public prior alone (k = 0)
  scratch        a ridge on the k own traces alone (adapt's scratch mix)
  adapt          `adapt` over the prior: its mix and strength chosen by cross-validation on the k traces
The score is Kendall tau-b against keyword counts on the test half's complete traces, within each answering model
(each engine orders one model's queue; averaged with the models' trace counts as weights) and pooled over models;
the mean and range over `repeats` halvings. The ceiling is the out-of-fold tau of the scratch ridge with folds by
prompt over all the source's traces."""
import numpy as np

from thinkcount.data.real import source_of
from thinkcount.evaluate.metrics import tau, tau_both
from thinkcount.serve.adapt import (ALPHAS, AdaptSettings, OwnTraces, censored_target, cross_validated, fit_design,
                                    folds_by_prompt)
from thinkcount.serve.head import MIXES, design, embed, fit_mix, mix_score

ROWS = {"scratch": ("scratch",), "adapt": MIXES}  # the fitted rows and the mixes each may choose from
ALL = "all"  # the k of every trace of the first half


def all_traces(frame):
    """OwnTraces of a counts frame (one row per record)."""
    return OwnTraces(list(frame["text"]), [m or "" for m in frame["model"]], frame["counts"].to_numpy(float),
                     frame["truncated"].to_numpy(bool), frame["prompt_id"].to_numpy(), [None] * len(frame))


def fit_prior(x, traces, sources, rows, rounds):
    """(log1p prediction for every row, alpha): a scratch ridge on the rows, its alpha the best mean tau when each
    of their sources is left out in turn (the first alpha when fewer than two sources)."""
    names = sorted(set(sources[rows]))

    def fitted(train, alpha):
        target = censored_target("scratch", x[train], traces.counts[train], traces.truncated[train], alpha, rounds)
        return fit_mix("scratch", x[train], target, alpha)

    def left_out_tau(alpha):
        taus = []
        for held in names:
            train, test = rows & (sources != held), rows & (sources == held) & ~traces.truncated
            value = tau(mix_score("scratch", fitted(train, alpha), x[test]), traces.counts[test])
            taus.append(-1.0 if value is None else value)
        return np.mean(taus)

    alpha = max(ALPHAS, key=left_out_tau) if len(names) > 1 else ALPHAS[0]
    return mix_score("scratch", fitted(rows, alpha), x), alpha


def halves(groups, seed):
    """(first half, second half) boolean masks by prompt, drawn with seed."""
    ids = np.unique(groups)
    first = set(np.random.default_rng(seed).permutation(ids)[: len(ids) // 2])
    mask = np.array([g in first for g in groups])
    return mask, ~mask


def one_split(x, traces, seed, sizes, settings):
    """({row: {k: tau_both}}, pool size) on one halving of a deployment's traces (x: their design rows, the
    prior's prediction last)."""
    first, second = halves(traces.groups, seed)
    test = np.flatnonzero(second & ~traces.truncated)
    pool = np.random.default_rng(seed + 1).permutation(np.flatnonzero(first))
    y, test_models = traces.counts[test], [traces.models[i] for i in test]
    lengths = np.array([len(p) for p in traces.prompts], float)
    out = {"prompt length": {"0": tau_both(lengths[test], y, test_models)},
           "prior": {"0": tau_both(x[test, -1], y, test_models)}, "scratch": {}, "adapt": {}, "adapt_mix": {}}
    for k in [k for k in sizes if k < len(pool)] + [ALL]:
        own = pool if k == ALL else pool[:k]
        mine = traces.subset(own)
        figures = cross_validated(x[own], mine, settings, MIXES)  # every row's mixes, run once
        for row, mixes in ROWS.items():
            head, provenance = fit_design(x[own], mine, settings, mixes, figures)
            out[row][str(k)] = tau_both(head.score(x[test], test_models), y, test_models)
        out["adapt_mix"][str(k)] = provenance["mix"]
    return out, len(pool)


def ceiling(x, traces, settings):
    """tau_both of out-of-fold scores by the scratch ridge (per model where a model has enough traces, its strength
    chosen by cross-validation inside each fold), folds by prompt over the whole source: what its prompts allow."""
    fold = folds_by_prompt(traces.groups, settings.folds, settings.seed)
    score = np.full(len(x), np.nan)
    for k in range(settings.folds):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        head, _ = fit_design(x[train], traces.subset(train), settings, ("scratch",))
        score[test] = head.score(x[test], [traces.models[i] for i in test])
    done = ~traces.truncated
    return tau_both(score[done], traces.counts[done], np.asarray(traces.models)[done])


def summarise(values):
    """{mean, low, high, n} over repeats (low and high: the range); mean None when no repeat defined it."""
    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "low": None, "high": None, "n": 0}
    return {"mean": float(np.mean(known)), "low": float(min(known)), "high": float(max(known)), "n": len(known)}


def first_k(curve, bar):
    """The smallest k whose mean reaches bar (None when none does, or bar is undefined)."""
    if bar is None:
        return None
    return next((k for k, v in curve.items() if v["mean"] is not None and v["mean"] >= bar), None)


def paired_gap(splits, metric):
    """Per k, adapt minus the better of the prior and the scratch ridge (the one with the higher mean over splits),
    paired within each split and summarised over splits: a range entirely below zero is adapt losing beyond the
    splits' noise."""
    gaps = {}
    for k in splits[0]["adapt"]:
        def mean(row, key):
            return summarise([s[row][key][metric] if key in s[row] else None for s in splits])["mean"]
        prior, scratch = mean("prior", "0"), mean("scratch", k)
        row, key = ("scratch", k) if scratch is not None and (prior is None or scratch > prior) else ("prior", "0")
        values = [s["adapt"][k][metric] - s[row][key][metric]
                  if k in s["adapt"] and None not in (s["adapt"][k][metric], s[row][key][metric]) else None
                  for s in splits]
        gaps[k] = summarise(values)
    return gaps


def deployment_curves(x, traces, spec, settings):
    """The rows of one deployment over spec.repeats halvings (tau within model and pooled), its ceiling, and the
    two thresholds on the within-model curve: the first k at which adapt beats both prompt length and the prior,
    and the first at which it reaches spec.share of the ceiling."""
    splits, pools = zip(*[one_split(x, traces, spec.seed + 1000 * r, spec.sizes, settings)
                          for r in range(spec.repeats)])
    rows = {metric: {row: {k: summarise([s[row][k][metric] if k in s[row] else None for s in splits])
                           for k in splits[0][row]}
                     for row in ("prompt length", "prior", "scratch", "adapt")} for metric in ("within", "pooled")}
    top = ceiling(x, traces, settings)
    within = rows["within"]
    floor = max(within["prompt length"]["0"]["mean"] or -1.0, within["prior"]["0"]["mean"] or -1.0)
    return {"traces": len(traces.prompts), "complete": int((~traces.truncated).sum()),
            "truncated": int(traces.truncated.sum()), "prompts": len(set(traces.groups)),
            "models": len(set(traces.models)), "pool": int(np.mean(pools)), "ceiling": top, "rows": rows,
            "adapt_minus_best": paired_gap(splits, "within"),
            "adapt_mixes": {k: sorted({s["adapt_mix"].get(k) for s in splits} - {None}) for k in within["adapt"]},
            "k_beats_floor": first_k(within["adapt"], floor + 1e-9),
            "k_to_share": first_k(within["adapt"], None if top["within"] is None or top["within"] <= 0
                                  else spec.share * top["within"])}


def learning_curves(frame, spec, progress=None):
    """{deployments: {source: curves}, settings} for a counts frame; `undefined` with the reason when fewer than
    two sources have spec.min_traces complete traces."""
    sources = np.array([source_of(w) for w in frame["worker_id"]])
    complete = {s: int(((sources == s) & ~frame["truncated"].to_numpy(bool)).sum()) for s in sorted(set(sources))}
    chosen = [s for s, n in complete.items() if n >= spec.min_traces]
    settings = AdaptSettings(seed=spec.seed, embedder=spec.embedder)
    out = {"settings": {**spec.model_dump(), "folds": settings.folds, "alphas": list(ALPHAS)},
           "complete_traces": complete, "deployments": {}}
    if len(chosen) < 2:
        return {**out, "undefined": f"{len(chosen)} source(s) with at least {spec.min_traces} complete traces "
                                    f"({', '.join(f'{s}: {n}' for s, n in complete.items())}); the curves need two "
                                    "(make real)"}
    traces = all_traces(frame)
    embeddings = embed(spec.embedder, traces.prompts)
    x = design(traces.prompts, np.zeros(len(traces.prompts)), embeddings)
    for name in chosen:
        here = sources == name
        prior, alpha = fit_prior(x, traces, sources, ~here, settings.censored_rounds)
        rows = np.flatnonzero(here)
        x_here = np.column_stack([x[rows, :-1], prior[rows]])
        out["deployments"][name] = {**deployment_curves(x_here, traces.subset(rows), spec, settings),
                                    "prior_alpha": alpha, "prior_sources": [s for s in complete if s != name]}
        if progress:
            progress(name)
    return out
