"""Stage evaluate@<method>: native metrics as the seed reported them, and the shared yardstick."""
import pandas as pd

from thinkcount import UserError, stage
from thinkcount.data import KEY
from thinkcount.dataset import load_frame
from thinkcount.evaluation import (classification_metrics, confusion, confusion_rows, eta_squared, leakage_audit,
                                   regression_metrics, yardstick_both)
from thinkcount.jsonl import load_jsonl, read_json, write_json


def main(params):
    name = stage.method_name(params)
    method, ev = params["methods"][name], params["evaluate"]
    config = read_json(f"models/{name}/label_config.json")
    train_summary = read_json(f"metrics/train/{name}.json")
    predictions = pd.DataFrame(load_jsonl(f"data/predictions/{name}.jsonl"))
    test = load_frame().merge(predictions[predictions["split"] == "test"].drop(columns="split"), on=KEY)
    if test.empty:
        raise UserError(f"data/predictions/{name}.jsonl holds no test prompts; rerun `dvc repro train@{name}`.")
    target = method["target"]
    result = {
        "method": name, "task": method["task"], "loss": method["loss"], "labels": describe_labels(config),
        "encoder": train_summary["model"], "variant": method["variant"], "target": target,
        "yardstick": yardstick_both(test["score"], test["expected_counts"], test, target,
                                    params["filter"]["max_counts"], ev["bootstrap"], ev["seed"]),
    }
    # Native metrics on the test rows of the method's own variant, against its own labels.
    labels = pd.DataFrame(load_jsonl(f"data/labels/{name}/labels.jsonl"))
    native = (labels[labels["split"] == "test"][KEY + ["label"]].rename(columns={"label": "true_label"})
              .merge(test, on=KEY))
    if method["task"] == "classification":
        pred, truth = native["label"].to_numpy(int), native["true_label"].to_numpy(int)
        result["native"] = classification_metrics(pred, truth, config["n_labels"], config["label_names"])
        result["native"]["confusion"] = confusion(pred, truth, config["n_labels"])
        plot = confusion_rows(pred, truth, config["label_names"])
    else:
        value = native["score"].to_numpy()
        truth = native["true_label"].to_numpy(float)
        if method["task"] == "regression":
            result["native"] = regression_metrics(value, truth)
            result["native"]["unit"] = "bins" if "label_stats" in config else target
        else:
            result["native"] = {"kendall_tau_log1p": result["yardstick"]["all"]["kendall_tau"]}
        plot = quintile_confusion(test["score"].to_numpy(), test[target].to_numpy())
    write_json(f"metrics/confusion/{name}.json", plot)

    oracle = read_json("metrics/eval/oracle.json")
    if oracle.get("available", True) and target == "counts":
        for part in ("all", "clean"):
            ceiling = oracle["yardstick"][part]["kendall_tau"]
            result["yardstick"][part]["share_of_oracle"] = result["yardstick"][part]["kendall_tau"] / ceiling
    if method.get("markers") or config["scheme"] == "kmeans":
        result["leakage"] = audit(labels, config, method, result, params["train"]["seed"])
    write_json(f"metrics/eval/{name}.json", result)
    print(f"evaluate {name}: tau {result['yardstick']['all']['kendall_tau']:.3f}")


def describe_labels(config):
    if config["scheme"] in ("raw", "log1p"):
        return f"{config['scheme']} {config['target']}"
    if config["scheme"] == "kmeans":
        return f"k-means K={config['k']}"
    return f"{config['scheme']} bins ({config['n_labels']})"


def quintile_confusion(score, target):
    """For methods without classes: quintile of the score against quintile of the true target."""
    bins = lambda x: pd.qcut(pd.Series(x).rank(method="first"), 5, labels=False)  # noqa: E731
    names = [f"Q{i + 1}" for i in range(5)]
    return confusion_rows(bins(score).to_numpy(), bins(target).to_numpy(), names)


def audit(labels, config, method, result, seed):
    """Can prompt features alone reach the encoder's accuracy, and how much counts variance do labels explain?"""
    frame = labels.merge(load_frame()[KEY + ["counts", "wait_counts"]], on=KEY)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    feature_acc = leakage_audit(train["text"], train["label"], test["text"], test["label"], seed)
    encoder_acc = result["native"]["accuracy"]
    return {
        "feature_model_accuracy": feature_acc,
        "encoder_accuracy": encoder_acc,
        "features_reach_encoder": bool(feature_acc >= encoder_acc - 0.02),
        "eta_squared": eta_squared(frame[method["target"]].to_numpy(), frame["label"].to_numpy()),
        "labels_from_prompt_features": config["scheme"] == "kmeans",
    }


if __name__ == "__main__":
    stage.run(main)
