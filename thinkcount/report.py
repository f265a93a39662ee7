"""The comparison table: one row per method and baseline, sorted by the shared yardstick."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
        rows.append({
            "method": m["method"], "task": m["task"], "loss": m.get("loss", ""), "labels": m.get("labels", ""),
            "encoder": m.get("encoder", ""), "target": m["target"], "native": headline(m.get("native")),
            "kendall_tau": y["kendall_tau"], "kendall_tau_ci95": y["kendall_tau_ci95"], "spearman": y["spearman"],
            "mae_counts": y["mae_counts"], "auc_top10": y["auc_top10"],
            "share_of_oracle": (y["kendall_tau"] / oracle if oracle and m["target"] == "counts"
                                and m.get("kind") != "oracle" else None),
            "kendall_tau_clean": clean["kendall_tau"],
            "seed_reported": reference.get(m["method"], ""), "leakage": m.get("leakage"),
        })
    return sorted(rows, key=lambda r: -r["kendall_tau"])


def headline(native):
    if not native:
        return ""
    if "f1_macro" in native:
        return f"F1-macro {native['f1_macro']:.3f}, acc {native['accuracy']:.3f}"
    if "mse" in native:
        return f"MSE {native['mse']:.2f}, MAE {native['mae']:.2f} ({native['unit']})"
    return ""


def fmt(value, digits=3):
    return "" if value is None else f"{value:.{digits}f}"


def markdown(rows, command):
    lines = [
        "# Comparison of predictors",
        "",
        f"Produced by `{command}`; every number below comes from `metrics/eval/*.json` of that run.",
        "",
        "Sorted by Kendall tau-b between each predictor's complexity score and the true target on the shared test "
        "split (`counts`, or `wait_counts` for the Wait methods). " + SEED_NOTE,
        "",
        "| method | task | loss | labels | encoder | native metric | tau [95% CI] | Spearman | MAE counts "
        "| AUC top 10% | share of oracle | tau clean | seed reported |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r["kendall_tau_ci95"]
        target = "" if r["target"] == "counts" else f" ({r['target']})"
        lines.append(
            f"| {r['method']}{target} | {r['task']} | {r['loss']} | {r['labels']} | {r['encoder']} | {r['native']} "
            f"| {r['kendall_tau']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {fmt(r['spearman'])} | {fmt(r['mae_counts'], 1)} "
            f"| {fmt(r['auc_top10'])} | {fmt(r['share_of_oracle'], 2)} | {fmt(r['kendall_tau_clean'])} "
            f"| {r['seed_reported']} |")
    audits = [r for r in rows if r["leakage"]]
    if audits:
        lines += ["", "## Leakage audit", "",
                  "A logistic regression on prompt-only features (length, question marks, cue words; no counts) "
                  "predicts each label set. When it matches the encoder, the encoder's accuracy says how well it "
                  "re-derives prompt features, not how well it predicts reasoning effort. Eta squared is the share "
                  "of the target's variance that the labels explain.", "",
                  "| method | encoder accuracy | feature model accuracy | features reach encoder | eta squared |",
                  "|---|---|---|---|---|"]
        for r in audits:
            a = r["leakage"]
            lines.append(f"| {r['method']} | {a['encoder_accuracy']:.3f} | {a['feature_model_accuracy']:.3f} "
                         f"| {'yes' if a['features_reach_encoder'] else 'no'} | {a['eta_squared']:.3f} |")
    return "\n".join(lines) + "\n"


def tau_chart(rows, path):
    rows = rows[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    taus = [r["kendall_tau"] for r in rows]
    err = [[t - r["kendall_tau_ci95"][0] for t, r in zip(taus, rows)],
           [r["kendall_tau_ci95"][1] - t for t, r in zip(taus, rows)]]
    colors = ["#888888" if r["task"] == "baseline" else "#3b6ea8" for r in rows]
    ax.barh([r["method"] for r in rows], taus, xerr=err, color=colors, capsize=3)
    ax.set_xlabel("Kendall tau-b vs true counts on the shared test split (95% bootstrap CI)")
    ax.axvline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
