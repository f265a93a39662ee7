"""Rows against epochs at one training cost: which split of the default budget serves the encoders best?

    python benchmarks/budget.py            # after `dvc repro filter split`; about a minute per setting and method

Trains a few methods with (train rows, epochs) settings of equal cost (rows x epochs) on the pipeline's own
data and labels, and scores each on the val prompts (never the test split, which the comparison reports)
with Kendall tau against the true target. Prints a markdown table.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's library, whatever is installed

from thinkcount.config import load_params  # noqa: E402
from thinkcount.dataset import load_frame  # noqa: E402
from thinkcount.evaluation import kendall  # noqa: E402
from thinkcount.features import prepare_text, saved_markers  # noqa: E402
from thinkcount.inference import interpret, predict_raw  # noqa: E402
from thinkcount.labels import make_labels  # noqa: E402
from thinkcount.training import train_method  # noqa: E402

SETTINGS = [(800, 2), (1600, 1)]
METHODS = ["m05_bin_regress", "m06_weighted", "m13_rank"]


def val_tau(params, name, rows, epochs):
    method = params["methods"][name]
    frame = load_frame(method["variant"])
    labels, config = make_labels(frame, method, params["train"]["seed"], name, params["features"])
    params = {**params, "train": {**params["train"], "max_train_rows": rows, "epochs": epochs}}
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, _, _, config = train_method(params, name, frame.assign(label=labels), config, tmp,
                                                      progress=False)
    val = frame[frame["split"] == "val"]
    texts = [prepare_text(t, saved_markers(config)) for t in val["text"]]
    score = interpret(predict_raw(model, tokenizer, texts, config["max_length"], 128), config)["score"]
    return kendall(score, val[method["target"]].to_numpy(dtype=float))


def main():
    params = load_params(ROOT / "params.yaml")
    print("| method | " + " | ".join(f"{r} rows x {e} epochs" for r, e in SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    table = []
    for name in METHODS:
        table.append([val_tau(params, name, r, e) for r, e in SETTINGS])
        print(f"| {name} | " + " | ".join(f"{t:.3f}" for t in table[-1]) + " |", flush=True)
    print("| mean | " + " | ".join(f"{np.mean(col):.3f}" for col in zip(*table)) + " |")
    print(f"\nKendall tau on the {int((load_frame()['split'] == 'val').sum())} val prompts.")


if __name__ == "__main__":
    main()
