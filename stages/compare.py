"""Stage compare: per-method headline metrics, paired differences, serving gains, the report and charts."""

from thinkcount.core import paths
from thinkcount.core.jsonl import read_json, write_json, write_text
from thinkcount.data.frames import load_frame
from thinkcount.evaluate.comparison import (add_families, add_paired_differences, add_sample_ceiling, add_serving,
                                            test_scores)
from thinkcount.evaluate.heldout import recommend
from thinkcount.evaluate.report import (fmt, headline, markdown, plot_rows, serving_chart, serving_plot_rows,
                                        summary_rows, tau_chart, training_curves)
from thinkcount.pipeline import stage

COMMANDS = {"sample": "make run (dvc repro)", "real": "make real"}  # what reproduces the report, by data.source


def main(params):
    names = list(params.methods) + list(params.baselines)
    rows = summary_rows([read_json(paths.eval_metrics(name)) for name in names], params.reference)
    test, scores = test_scores([r["method"] for r in rows], load_frame())
    ev = params.evaluate
    rows = add_families(add_paired_differences(rows, scores, test, ev), scores, test, ev)
    rows, ceilings = add_sample_ceiling(rows, scores, test, ev)
    rows, served = add_serving(rows, scores, test, params.serving)
    for row in rows:
        write_json(paths.method_metrics(row['method']), headline(row))
    heldout = {name: read_json(paths.heldout(name)) for name in params.heldout.methods}
    recommended = recommend(heldout)
    write_json(paths.SUMMARY, {"rows": rows, "sample_ceiling": ceilings, "recommended": recommended,
                               "heldout": {name: {by: r[by].get("mean") for by in ("source", "family")}
                                           for name, r in heldout.items()}})
    write_json(paths.TAU_PLOT, plot_rows(rows))
    write_json(paths.SERVING, served)
    write_json(paths.SERVING_PLOT, serving_plot_rows(served))
    for curve in ("eval/loss", "train/loss"):
        write_json(paths.curve_plot(curve), training_curves(params.methods, curve))
    write_text(paths.COMPARISON, markdown(rows, COMMANDS.get(params.data.source, "dvc repro"), served, ceilings,
                                            heldout, recommended))
    tau_chart(rows, paths.TAU_PNG)
    serving_chart(served, rows, paths.SERVING_PNG)
    for r in rows:
        print(f"{r['method']:<20} tau {fmt(r['kendall_tau'])}")


if __name__ == "__main__":
    stage.run(main)
