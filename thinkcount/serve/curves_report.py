"""The learning curves' report (reports/curves.md) and chart (reports/curves.png) from thinkcount/serve/curves.py's
result: one table per deployment, a summary of what a deployment gains by when, and the pooled figures."""
from matplotlib.figure import Figure

from thinkcount.core.jsonl import atomic_path

ROWS = ("prompt length", "prior", "scratch", "adapt")


def fmt(value):
    return "undefined" if value is None else f"{value:+.3f}"


def cell(entry):
    """mean [low, high] over the splits, or undefined."""
    if entry is None or entry["mean"] is None:
        return "undefined"
    return f"{fmt(entry['mean'])} [{fmt(entry['low'])}, {fmt(entry['high'])}]"


def k_label(k, pool):
    return f"all ({pool})" if k == "all" else k


def deployment_table(d, metric):
    """Markdown rows: one per row of the curves, one column per k (0 for the rows without a fit)."""
    ks = list(d["rows"][metric]["adapt"])
    lines = ["| row | k = 0 | " + " | ".join(k_label(k, d["pool"]) for k in ks) + " |",
             "|---|---|" + "---|" * len(ks)]
    for row in ROWS:
        curve = d["rows"][metric][row]
        zero = cell(curve.get("0"))
        lines.append(f"| {row} | {zero} | " + " | ".join(cell(curve.get(k)) if k in curve else ""
                                                        for k in ks) + " |")
    gaps = d.get("adapt_minus_best") if metric == "within" else None
    if gaps:
        lines.append("| adapt minus the better of prior and scratch | | " + " | ".join(cell(gaps[k]) for k in ks)
                     + " |")
    return lines


def summary_table(result):
    """One line per deployment: floor, prior, adapt at a few k, ceiling and the two thresholds."""
    share = result["settings"]["share"]
    lines = ["| deployment | traces / prompts / models | prompt length | prior (k = 0) | adapt, k = 25 | "
             "adapt, k = 100 | adapt, all own | ceiling | first k beating length and prior | "
             f"first k at {share:g} of ceiling |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, d in result["deployments"].items():
        w = d["rows"]["within"]
        lines.append(f"| {name} | {d['traces']:,} / {d['prompts']:,} / {d['models']} | "
                     f"{fmt(w['prompt length']['0']['mean'])} | {fmt(w['prior']['0']['mean'])} | "
                     f"{fmt(w['adapt'].get('25', {}).get('mean'))} | {fmt(w['adapt'].get('100', {}).get('mean'))} | "
                     f"{fmt(w['adapt']['all']['mean'])} | {fmt(d['ceiling']['within'])} | "
                     f"{d['k_beats_floor'] or 'none'} | {d['k_to_share'] or 'none'} |")
    return lines


def markdown(result, command):
    s = result["settings"]
    head = ["# Learning curves: how many of its own requests a deployment needs", "",
            f"Made by `{command}` (stage `curves`, thinkcount/serve/curves.py). Each source in turn is the "
            "deployment: the prior is a ridge over the prompt's surface counts and frozen embedding fitted on the "
            "other sources; `adapt` and a from-scratch ridge are fitted on k traces drawn from one half of the "
            "deployment's prompts and tested on the other half's complete traces. Kendall tau-b against keyword "
            f"counts within each answering model (weighted by its traces); mean [range] over {s['repeats']} "
            "halvings. The ceiling is the scratch ridge's out-of-fold tau, folds by prompt over the whole source.", ""]
    if result.get("undefined"):
        return "\n".join(head + [f"Undefined: {result['undefined']}.", ""])
    body = ["## Summary", ""] + summary_table(result) + [""]
    for name, d in result["deployments"].items():
        body += [f"## {name}", "", f"{d['traces']:,} traces ({d['truncated']} truncated), {d['prompts']:,} prompts, "
                 f"{d['models']} models; prior fitted on {', '.join(d['prior_sources'])} (alpha "
                 f"{d['prior_alpha']:g}); mixes adapt chose: "
                 + "; ".join(f"k {k}: {', '.join(m)}" for k, m in d["adapt_mixes"].items()) + ".", ""]
        body += deployment_table(d, "within") + [""]
    body += ["## Pooled over models", "", "The same fits scored over every model's traces together: the answering "
             "model's own level dominates this figure once adapt has a head per model.", ""]
    for name, d in result["deployments"].items():
        body += [f"### {name} (ceiling {fmt(d['ceiling']['pooled'])})", ""] + deployment_table(d, "pooled") + [""]
    return "\n".join(head + body)


def chart(result, path):
    """One panel per deployment: scratch and adapt against k with their ranges; prompt length, prior and the
    ceiling as lines."""
    names = list(result["deployments"])
    fig = Figure(figsize=(4 * max(len(names), 1), 3.6))
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    if not names:
        axes[0].text(0.5, 0.5, f"undefined:\n{result.get('undefined', '')}", ha="center", va="center", wrap=True,
                     fontsize=8)
        axes[0].set_axis_off()
    for ax, name in zip(axes, names):
        d = result["deployments"][name]
        w = d["rows"]["within"]
        ks = list(w["adapt"])
        xs = range(len(ks))
        for row, color in (("scratch", "#999999"), ("adapt", "#3b6ea8")):
            points = [w[row][k] for k in ks]
            ax.plot(xs, [p["mean"] for p in points], marker="o", color=color, label=row)
            ax.fill_between(xs, [p["low"] for p in points], [p["high"] for p in points], color=color, alpha=0.2)
        for label, value, style in (("prompt length", w["prompt length"]["0"]["mean"], ":"),
                                    ("prior (k = 0)", w["prior"]["0"]["mean"], "--"),
                                    ("ceiling", d["ceiling"]["within"], "-")):
            if value is not None:
                ax.axhline(value, linestyle=style, color="black", linewidth=0.9, label=label)
        ax.set_xticks(list(xs), [k_label(k, d["pool"]) for k in ks], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("own traces k")
    if names:
        axes[0].set_ylabel("Kendall tau-b within model")
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
