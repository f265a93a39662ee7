"""Stage curves: learning curves of `adapt` with each source of the corpus as the deployment (needs two sources;
the embedded corpus has one, and the report says so)."""
import pandas as pd

from stages.compare import COMMANDS
from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, write_json, write_text
from thinkcount.pipeline import stage
from thinkcount.serve.curves import learning_curves
from thinkcount.serve.curves_report import chart, markdown


def main(params):
    frame = pd.DataFrame(load_jsonl(paths.COUNTS))
    result = learning_curves(frame, params.curves, progress=lambda name: print(f"curves: {name} done", flush=True))
    write_json(paths.CURVES, result)
    write_text(paths.CURVES_MD, markdown(result, COMMANDS.get(params.data.source, "dvc repro")))
    chart(result, paths.CURVES_PNG)
    for name, d in result["deployments"].items():
        print(f"curves {name}: adapt beats prompt length and prior from k = {d['k_beats_floor']}")
    if result.get("undefined"):
        print(f"curves: undefined: {result['undefined']}")


if __name__ == "__main__":
    stage.run(main)
