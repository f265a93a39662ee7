"""The comparison: one row per method and baseline, sorted by the shared yardstick.

It is written three ways: `metrics/methods/<name>.json` (the headline that `dvc metrics show` and
`dvc metrics diff` print, one row per method), `reports/comparison.md` with the details, and the tau
chart (a PNG, and the rows of DVC's interval bar plot).
"""
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend to choose

from thinkcount.core import paths
from thinkcount.core.jsonl import atomic_path
from thinkcount.evaluate.metrics import UNDEFINED

SEED_NOTE = ("Native metrics are each method's own (accuracy/F1 on its own labels, MSE/MAE in its own units) "
             "and do not compare across rows. The yardstick does: every row ranks the same test prompts.")


def summary_rows(metrics, reference):
    """Flatten each metrics file into one row of the comparison; share of oracle where an oracle ran."""
    oracle = next((m["yardstick"]["all"]["kendall_tau"] for m in metrics
                   if m.get("kind") == "oracle" and m.get("yardstick")), None)
    rows = []
    for m in metrics:
        if not m.get("yardstick"):
            continue
        y, clean = m["yardstick"]["all"], m["yardstick"]["clean"]
        share = None
        if oracle and y["kendall_tau"] is not None and m["target"] == "counts" and m.get("kind") != "oracle":
            share = y["kendall_tau"] / oracle
        rows.append({
            "method": m["method"], "task": m["task"], "loss": m.get("loss", ""), "labels": m.get("labels", ""),
            "encoder": m.get("encoder", ""), "target": m["target"], "native": native_headline(m.get("native")),
            "kendall_tau": y["kendall_tau"], "kendall_tau_ci95": y["kendall_tau_ci95"], "spearman": y["spearman"],
            "mae_counts": y["mae_counts"], "auc_top10": y["auc_top10"], "share_of_oracle": share,
            "kendall_tau_clean": clean["kendall_tau"], "seed_reported": reference.get(m["method"], ""),
            "leakage": m.get("leakage"), "kind": m.get("kind"), "model_token": m.get("model_token", False),
            "train_models": m.get("train_models"),
            "train_rows": m.get("train_rows"),
            "train_rows_rule": m.get("train_rows_rule", "budget"),
        })
    # Undefined tau (constant scores) sorts last.
    return sorted(rows, key=lambda r: (r["kendall_tau"] is None, -(r["kendall_tau"] or 0)))


def native_headline(native):
    if not native:
        return ""
    if "f1_macro" in native:
        return f"F1-macro {native['f1_macro']:.3f}, acc {native['accuracy']:.3f}"
    if "mse" in native:
        return f"MSE {native['mse']:.2f}, MAE {native['mae']:.2f} ({native['unit']})"
    return ""


def headline(row):
    """What `dvc metrics show` prints for one row: few columns, rounded; undefined values are left out."""
    low, high = row["kendall_tau_ci95"]
    values = {"tau": row["kendall_tau"], "tau_low": low, "tau_high": high, "spearman": row["spearman"],
              "auc_top10": row["auc_top10"], "oracle_share": row["share_of_oracle"],
              "ceiling_share": row.get("share_of_ceiling"), "tau_vs_mean": row.get("kendall_tau_mean")}
    if row.get("serving"):
        values["serve_mean"] = row["serving"]["mean"]
    out = {key: round(value, 4) for key, value in values.items() if value is not None}
    out["target"] = row["target"]
    if row["native"]:
        out["native"] = row["native"]
    return out


def plot_rows(rows):
    """Rows of DVC's interval bar plot (.dvc/plots/bar_interval.json): one per row with a defined tau."""
    return [{"method": r["method"], "kind": "baseline" if r["task"] == "baseline" else "method",
             "tau": r["kendall_tau"], "tau_low": r["kendall_tau_ci95"][0], "tau_high": r["kendall_tau_ci95"][1]}
            for r in rows if r["kendall_tau"] is not None]


def training_curves(methods, curve):
    """One row per logged point of `curve` (eval/loss or train/loss) across methods, for an overlaid plot."""
    rows = []
    for method in methods:
        path = Path(paths.train_log(method)) / "plots" / "metrics" / f"{curve}.tsv"
        if path.is_file():
            table = pd.read_csv(path, sep="\t")
            rows += [{"method": method, "step": int(step), "loss": float(loss)}
                     for step, loss in zip(table["step"], table[curve.rsplit("/", 1)[-1]])]
    return rows


def fmt(value, digits=3):
    return UNDEFINED if value is None else f"{value:.{digits}f}"


def tau_with_interval(row):
    if row["kendall_tau"] is None:
        return UNDEFINED
    low, high = row["kendall_tau_ci95"]
    return f"{row['kendall_tau']:.3f} [{fmt(low)}, {fmt(high)}]"


def paired_cell(row, key):
    """A paired difference as "+0.058 [0.030, 0.085] better"; "reference" for the row compared against."""
    diff = row.get(key)
    if diff is None:
        return ""
    if diff["difference"] is None:
        return UNDEFINED
    low, high = diff["ci95"]
    return f"{diff['difference']:+.3f} [{low:+.3f}, {high:+.3f}] {diff['verdict']}"


def serving_cell(row):
    serving = row.get("serving")
    return "" if not serving else f"{serving['mean']:.2f} / {serving['p90']:.2f}"


def heldout_lines(heldout, recommended):
    """The held-out section: each finalist's tau within model (pooled after it) on every held-out source and model
    family, beside prompt length on the same traces, and the recommended finalist."""
    folds = {by: sorted({g for r in heldout.values() for g in r.get(by, {}).get("folds", {})})
             for by in ("source", "family")}
    if not any(folds.values()):
        return []
    lines = ["## Held-out sources and model families (the headline)", "",
             "Each finalist trained once per group left out, on every other source (or model family), and scored on "
             "a sample of the left-out group's complete traces: Kendall tau-b within answering model (pooled over "
             "models after the slash). Prompt length is scored on the same traces.", ""]
    for by, groups in folds.items():
        if not groups:
            continue
        lines += [f"| held-out {by} | " + " | ".join(groups) + " | mean |", "|---|" + "---|" * (len(groups) + 1)]
        first = next(iter(heldout.values()))[by]
        for name, label in [(n, n) for n in heldout] + [(None, "prompt length")]:
            result = first if name is None else heldout[name][by]
            key = "prompt length" if name is None else "method"
            cells = [f"{fmt(result['folds'][g][key]['within'])} / {fmt(result['folds'][g][key]['pooled'])}"
                     if g in result.get("folds", {}) else "" for g in groups]
            mean = result.get("mean", {}).get(key, {})
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {fmt(mean.get('within'))} / "
                         f"{fmt(mean.get('pooled'))} |")
        lines.append("")
    if recommended:
        below = recommended["below_length"]
        lines += [f"Recommended for serving: **{recommended['method']}** ({recommended['by']}: "
                  f"{fmt(recommended['held_out_tau'])}, prompt length {fmt(recommended['prompt_length_tau'])}); "
                  + (f"it does not beat prompt length on {', '.join(below)}." if below
                     else "it beats prompt length on every held-out source."), ""]
    return lines


def held_out_first(heldout, recommended):
    """The held-out section and the in-source table's heading after it, or nothing where no group was held out."""
    lines = heldout_lines(heldout or {}, recommended)
    return lines + ["## In-source test split (secondary: the same sources train and test)", ""] if lines else []


def markdown(rows, command, served=None, ceilings=None, heldout=None, recommended=None):
    references = {r.get(k, {}).get("reference") for r in rows for k in ("vs_best_baseline", "vs_best_method")}
    ceilings = {t: c for t, c in (ceilings or {}).items() if c}
    share_of = "sample ceiling" if ceilings else "oracle"
    lines = [
        "# Comparison of predictors",
        "",
        f"Produced by `{command}`; every number below comes from `metrics/eval/*.json` and `metrics/summary.json` "
        "of that run.",
        "",
        "Sorted by Kendall tau-b between each predictor's complexity score and the true target on the shared test "
        "split (`counts`, or `wait_counts` for the Wait methods); undefined where a predictor's scores are "
        "constant. The paired columns give each row's tau minus the reference's (the best baseline, or method, on "
        "the same target) on the same bootstrap resamples, with a 95% interval: better or worse when the "
        "difference's bootstrap p-value stays below 0.05 after Holm's correction over every row compared with "
        "that reference, else indistinguishable. Latency: mean "
        "and p90 latency when an engine with continuous batching at 90% load admits the test prompts "
        "shortest-predicted-first by this score, relative to first come first served (lower is better; the "
        "serving section below has the sweep over load). " + SEED_NOTE,
        "",
        *held_out_first(heldout, recommended),
        *ceiling_lines(ceilings),
        f"| method | tau [95% CI] | vs best baseline | vs best method | AUC top 10% | share of {share_of} "
        + ("| tau vs sample mean " if ceilings else "") + "| latency mean / p90 | native metric |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if ceilings else ""),
    ]
    for r in rows:
        target = "" if r["target"] == "counts" else f" ({r['target']})"
        share = r.get("share_of_ceiling") if ceilings else r["share_of_oracle"]
        cells = [paired_cell(r, k) or ("reference" if r["method"] in references else "")
                 for k in ("vs_best_baseline", "vs_best_method")]
        mean = f"| {fmt(r['kendall_tau_mean']) if 'kendall_tau_mean' in r else ''} " if ceilings else ""
        lines.append(f"| {r['method']}{target} | {tau_with_interval(r)} | {cells[0]} | {cells[1]} "
                     f"| {fmt(r['auc_top10'])} | {'' if share is None else fmt(share, 2)} {mean}"
                     f"| {serving_cell(r)} | {r['native']} |")
    lines += ["", "## Details", "",
              "| method | task | loss | labels | encoder | train rows | Spearman | MAE counts | tau clean "
              "| seed reported |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['task']} | {r['loss']} | {r['labels']} | {r['encoder']} "
                     f"| {r['train_rows'] or ''} | {fmt(r['spearman'])} | {fmt(r['mae_counts'], 1)} "
                     f"| {fmt(r['kendall_tau_clean'])} | {r['seed_reported']} |")
    return "\n".join(lines + family_section(rows) + leakage_section(rows) + serving_section(served, rows)) + "\n"


def ceiling_lines(ceilings):
    """The sample ceiling of each target, where the test prompts have repeated samples from one model."""
    if not ceilings:
        return []
    lines = [f"Sample ceiling on `{t}`: tau {c['kendall_tau']:.3f} [{fmt(c['kendall_tau_ci95'][0])}, "
             f"{fmt(c['kendall_tau_ci95'][1])}] of one held-out sample against the mean of the same prompt's other "
             f"samples from the same model, over {c['pairs']} (prompt, model) pairs of the test split."
             for t, c in ceilings.items()]
    return lines + ["Share of sample ceiling: a row's tau on those held-out samples over the ceiling's. Tau vs "
                    "sample mean: the row's mean score per (prompt, model) pair against the pair's mean log1p "
                    "target, over every pair.", ""]


def family_section(rows):
    """Tau per model family: pooled vs model-aware rows, and the transfer of a method trained on one family."""
    names = list(dict.fromkeys(f for r in rows for f in r.get("families") or {}))
    if not names:
        return []
    lines = ["", "## By model family", "",
             "Tau on the test rows answered by each family's models (evaluate.families), with a 95% interval. A "
             "method with train_models trained on one family's rows only: the other columns are its transfer.", "",
             "| method | trained on models (model-aware: the model's name before the prompt) | "
             + " | ".join(f"{n} (n)" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in rows:
        if r.get("families"):
            cells = [f"{tau_with_interval(r['families'][n])} ({r['families'][n]['n']})" if n in r["families"] else ""
                     for n in names]
            seen = (f"`{r['train_models']}`".replace("|", "\\|") if r["train_models"] else "all") \
                + (", model-aware" if r["model_token"] else "")
            lines.append(f"| {r['method']} | {seen} | " + " | ".join(cells) + " |")
    return lines


def leakage_section(rows):
    audits = [r for r in rows if r["leakage"]]
    if not audits:
        return []
    lines = ["", "## Leakage audit", "",
             "A logistic regression on the prompt-only features behind each labeling (the k-means inputs, or the "
             "marker cues; no counts) predicts its labels. When it matches the encoder, the encoder's accuracy says "
             "how well it re-derives prompt features, not how well it predicts reasoning effort. Eta squared is the "
             "share of the target's variance that the labels explain.", "",
             "| method | feature set | encoder accuracy | feature model accuracy | features reach encoder "
             "| eta squared |", "|---|---|---|---|---|---|"]
    for r in audits:
        a = r["leakage"]
        lines.append(f"| {r['method']} | {a['feature_set']} | {a['encoder_accuracy']:.3f} "
                     f"| {a['feature_model_accuracy']:.3f} | {'yes' if a['features_reach_encoder'] else 'no'} "
                     f"| {a['eta_squared']:.3f} |")
    return lines


def serving_section(served, rows):
    """Mean latency relative to first come first served at each load, then p90, p99 and the longest wait at
    the highest load, per policy: first come first served, the true lengths, and each row's score."""
    if not served:
        return []
    loads, top = served["loads"], str(served["loads"][-1])
    order = ["fcfs", "true_lengths"] + [r["method"] for r in rows if r["method"] in served["policies"]]
    engine = ", ".join(f"{k} {v}" for k, v in served["engine"].items())
    lines = ["", "## Serving with continuous batching", "",
             f"The test prompts arrive as a Poisson process at each load (arrival rate over the engine's full-batch "
             f"capacity) and are served by an engine model ({engine}"
             "; thinkcount/evaluate/engine_sim.py): each request generates its trace's length in tokens. Mean latency "
             "relative to first come first served on the same arrival sequences at each load, then at load "
             f"{top} the p90 and p99 latency and the longest wait in seconds, with their 95% range over the "
             "sequences. `true_lengths` admits by the real output length: the most any prediction can gain.", "",
             "| policy | " + " | ".join(f"mean vs FCFS, load {load}" for load in loads)
             + f" | p90 s at {top} | p99 s at {top} | longest wait s at {top} |",
             "|---" * (len(loads) + 4) + "|"]
    for name in order:
        per_load = served["policies"][name]
        cells = [f"{per_load[str(load)]['mean']['vs_fcfs']:.3f}" for load in loads]
        cells += [f"{m['mean']:.1f} [{m['low']:.1f}, {m['high']:.1f}]" for m in
                  (per_load[top]["p90"], per_load[top]["p99"], per_load[top]["max_wait"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def serving_plot_rows(served):
    """Rows of the serving plot (lines by policy): mean latency in seconds at each load."""
    return [{"method": name, "load": float(load), "mean_latency_s": per_load[load]["mean"]["mean"]}
            for name, per_load in served["policies"].items() for load in per_load]


def serving_chart(served, rows, path):
    """Mean latency against load for first come first served, the true lengths, the best method and the best
    baseline by tau (95% range over arrival sequences)."""
    ranked = [r for r in rows if r["kendall_tau"] is not None and r["method"] in served["policies"]
              and r["target"] == "counts" and r.get("kind") != "oracle"
              and r.get("train_rows_rule", "budget") == "budget"]  # as the table's references are chosen
    picks = ["fcfs", "true_lengths"] + [max((r for r in ranked if (r["task"] == "baseline") == b),
                                            key=lambda r: r["kendall_tau"])["method"] for b in (False, True)
                                        if any((r["task"] == "baseline") == b for r in ranked)]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name in picks:
        points = [served["policies"][name][str(load)]["mean"] for load in served["loads"]]
        ax.errorbar(served["loads"], [p["mean"] for p in points],
                    yerr=[[p["mean"] - p["low"] for p in points], [p["high"] - p["mean"] for p in points]],
                    marker="o", capsize=3, label=name)
    ax.set_xlabel("load (arrival rate / full-batch capacity)")
    ax.set_ylabel("mean latency, s")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)


def tau_chart(rows, path):
    rows = [r for r in rows if r["kendall_tau"] is not None][::-1]
    fig = Figure(figsize=(8, 0.35 * len(rows) + 1.2))
    ax = fig.subplots()
    taus = [r["kendall_tau"] for r in rows]
    err = [[t - (r["kendall_tau_ci95"][0] if r["kendall_tau_ci95"][0] is not None else t) for t, r in zip(taus, rows)],
           [(r["kendall_tau_ci95"][1] if r["kendall_tau_ci95"][1] is not None else t) - t for t, r in zip(taus, rows)]]
    colors = ["#888888" if r["task"] == "baseline" else "#3b6ea8" for r in rows]
    ax.barh([r["method"] for r in rows], taus, xerr=err, color=colors, capsize=3)
    ax.set_xlabel("Kendall tau-b vs true counts on the shared test split (95% bootstrap CI)")
    ax.axvline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
