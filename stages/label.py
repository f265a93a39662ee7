"""Stage label@<method>: the method's labels on its data variant, with their configuration."""
import numpy as np

from thinkcount.core import paths
from thinkcount.core.jsonl import write_json, write_jsonl
from thinkcount.data.frames import load_frame
from thinkcount.data.records import KEY
from thinkcount.methods.labels import make_labels
from thinkcount.pipeline import stage


def main(params):
    name = stage.method_name(params)
    method = params["methods"][name]
    frame = load_frame(method["variant"])
    labels, config = make_labels(frame, method, params["train"]["seed"], name, params["features"])
    frame["label"] = labels
    columns = KEY + ["split", "priority", "text", "label"]
    write_jsonl(paths.labels(name), frame[columns].to_dict("records"))
    write_json(paths.label_config(name), config.to_dict())
    summary = {"rows": len(frame), "n_labels": config.n_labels}
    if config.n_labels is not None:
        train = frame[frame["split"] == "train"]
        summary["train_per_label"] = np.bincount(train["label"], minlength=config.n_labels).tolist()
    write_json(paths.label_metrics(name), summary)
    print(f"label {name}: {summary}")


if __name__ == "__main__":
    stage.run(main)
