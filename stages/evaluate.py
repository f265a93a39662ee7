"""Stage evaluate@<method>: native metrics as the seed reported them, the shared yardstick, the leakage audit."""
import pandas as pd

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, read_json, write_json
from thinkcount.data.frames import load_frame, require_target
from thinkcount.data.records import KEY
from thinkcount.evaluate.metrics import evaluate_method
from thinkcount.methods.labelconfig import LabelConfig
from thinkcount.methods.modelfolder import LABEL_CONFIG
from thinkcount.pipeline import stage


def main(params):
    name = stage.method_name(params)
    method = params.methods[name]
    config = LabelConfig.from_dict(read_json(f"{paths.model(name)}/{LABEL_CONFIG}"))
    predictions = pd.DataFrame(load_jsonl(paths.predictions(name)))
    frame = require_target(load_frame(), method.target)
    test = frame.merge(predictions[predictions["split"] == "test"].drop(columns="split"), on=KEY)
    if test.empty:
        raise UserError(f"{paths.predictions(name)} holds no test prompts; rerun `dvc repro train@{name}`.")
    labels = pd.DataFrame(load_jsonl(paths.labels(name)))
    result, plot = evaluate_method(method, config, test, labels, frame, params.evaluate, params.filter.max_counts,
                                   params.train.seed)
    trained = read_json(paths.train_metrics(name))
    result = {"method": name, "encoder": trained["model"], "train_rows": trained["train_rows"], **result}
    write_json(paths.eval_metrics(name), result)
    write_json(paths.confusion(name), plot)
    print(f"evaluate {name}: tau {result['yardstick']['all']['kendall_tau']:.3f}")


if __name__ == "__main__":
    stage.run(main)
