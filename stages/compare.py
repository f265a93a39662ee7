"""Stage compare: per-method headline metrics, paired differences, serving gains, the report and charts."""

from thinkcount import stage
from thinkcount.comparison import add_paired_differences, add_serving, test_scores
from thinkcount.dataset import load_frame
from thinkcount.jsonl import read_json, write_json, write_text
from thinkcount.report import (fmt, headline, markdown, plot_rows, serving_chart, serving_plot_rows, summary_rows,
                               tau_chart, training_curves)

COMMAND = "make run (dvc repro)"


def main(params):
    names = list(params["methods"]) + list(params["baselines"])
    rows = summary_rows([read_json(f"metrics/eval/{name}.json") for name in names], params["reference"])
    test, scores = test_scores([r["method"] for r in rows], load_frame())
    rows, served = add_serving(add_paired_differences(rows, scores, test, params["evaluate"]), scores, test,
                               params["serving"])
    for row in rows:
        write_json(f"metrics/methods/{row['method']}.json", headline(row))
    write_json("metrics/summary.json", {"rows": rows})
    write_json("metrics/plots/tau.json", plot_rows(rows))
    write_json("metrics/serving.json", served)
    write_json("metrics/plots/serving.json", serving_plot_rows(served))
    for curve in ("eval/loss", "train/loss"):
        write_json(f"metrics/plots/{curve.replace('/', '_')}.json", training_curves(params["methods"], curve))
    write_text("reports/comparison.md", markdown(rows, COMMAND, served))
    tau_chart(rows, "reports/tau.png")
    serving_chart(served, rows, "reports/serving.png")
    for r in rows:
        print(f"{r['method']:<20} tau {fmt(r['kendall_tau'])}")


if __name__ == "__main__":
    stage.run(main)
