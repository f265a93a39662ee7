"""Stage compare: metrics/summary.json, reports/comparison.md and the tau chart."""
from pathlib import Path

from thinkcount import stage
from thinkcount.jsonl import read_json, write_json
from thinkcount.report import markdown, summary_rows, tau_chart

COMMAND = "make run (dvc repro)"


def main(params):
    names = list(params["methods"]) + list(params["baselines"])
    rows = summary_rows([read_json(f"metrics/eval/{name}.json") for name in names], params["reference"])
    write_json("metrics/summary.json", {"rows": rows})
    Path("reports").mkdir(exist_ok=True)
    Path("reports/comparison.md").write_text(markdown(rows, COMMAND), encoding="utf-8")
    tau_chart(rows, "reports/tau.png")
    for r in rows:
        print(f"{r['method']:<20} tau {r['kendall_tau']:.3f}")


if __name__ == "__main__":
    stage.run(main)
