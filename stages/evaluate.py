"""Stage evaluate@<method>: native metrics as the seed reported them, the shared yardstick, the leakage audit."""
import pandas as pd

from thinkcount import UserError, stage
from thinkcount.data import KEY
from thinkcount.dataset import load_frame
from thinkcount.evaluation import evaluate_method
from thinkcount.jsonl import load_jsonl, read_json, write_json
from thinkcount.labelconfig import LabelConfig


def main(params):
    name = stage.method_name(params)
    method = params["methods"][name]
    config = LabelConfig.from_dict(read_json(f"models/{name}/label_config.json"))
    predictions = pd.DataFrame(load_jsonl(f"data/predictions/{name}.jsonl"))
    frame = load_frame()
    test = frame.merge(predictions[predictions["split"] == "test"].drop(columns="split"), on=KEY)
    if test.empty:
        raise UserError(f"data/predictions/{name}.jsonl holds no test prompts; rerun `dvc repro train@{name}`.")
    labels = pd.DataFrame(load_jsonl(f"data/labels/{name}/labels.jsonl"))
    result, plot = evaluate_method(method, config, test, labels, frame, params["evaluate"],
                                   params["filter"]["max_counts"], params["train"]["seed"])
    trained = read_json(f"metrics/train/{name}.json")
    result = {"method": name, "encoder": trained["model"], "train_rows": trained["train_rows"], **result}
    write_json(f"metrics/eval/{name}.json", result)
    write_json(f"metrics/confusion/{name}.json", plot)
    print(f"evaluate {name}: tau {result['yardstick']['all']['kendall_tau']:.3f}")


if __name__ == "__main__":
    stage.run(main)
