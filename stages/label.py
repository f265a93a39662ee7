"""Stage label@<method>: the method's labels on its data variant, with their configuration."""
import numpy as np

from thinkcount.core import paths
from thinkcount.core.jsonl import write_json, write_jsonl
from thinkcount.data.features import frame_texts
from thinkcount.data.frames import load_frame, mean_of_samples, require_target, restrict_models
from thinkcount.data.records import KEY
from thinkcount.methods.labels import make_labels
from thinkcount.pipeline import stage


def main(params):
    name = stage.method_name(params)
    method = params.methods[name]
    frame = require_target(load_frame(method.variant), method.target)
    frame = restrict_models(frame, method.train_models)
    if params.train.sample_mean:
        frame[method.target] = mean_of_samples(frame, method.target)
    labels, config = make_labels(frame, method, params.train.seed, name, params.features)
    frame["label"], frame["text"] = labels, frame_texts(frame, config.model_token)
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
