"""Rows against epochs at one training cost, and length-grouped against random batches: which settings
serve the encoders best?

    python benchmarks/budget.py            # after `dvc repro filter split`; about a minute per setting and method

Trains a few methods with settings (train rows, epochs, batches) on the pipeline's own data and labels: rows x
epochs is the same cost in each. Scores each on the val prompts (never the test split, which the comparison
reports) with Kendall tau against the true target, and times the training. Prints a markdown table.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's library, whatever is installed

from thinkcount.pipeline.config import load_params, updated  # noqa: E402
from thinkcount.data.frames import load_frame  # noqa: E402
from thinkcount.evaluate.metrics import kendall  # noqa: E402
from thinkcount.data.features import prepare_text  # noqa: E402
from thinkcount.methods.inference import interpret, predict_raw  # noqa: E402
from thinkcount.methods.labels import make_labels  # noqa: E402
from thinkcount.methods.training import train_method  # noqa: E402

SETTINGS = [(800, 2, "length_grouped"), (1600, 1, "length_grouped"), (800, 2, "random")]
METHODS = ["m01_regress", "m03_equal_freq", "m05_bin_regress", "m06_weighted"]


def val_tau(params, name, rows, epochs, batches):
    """(Kendall tau on the val prompts, training seconds) of one method under one setting."""
    method = params.methods[name]
    frame = load_frame(method.variant)
    labels, config = make_labels(frame, method, params.train.seed, name, params.features)
    params = updated(params, train={"max_train_rows": rows, "epochs": epochs, "batches": batches})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, _, _, config = train_method(params, name, frame.assign(label=labels), config, tmp,
                                                      progress=False)
    seconds = time.perf_counter() - start
    val = frame[frame["split"] == "val"]
    texts = [prepare_text(t, config.markers) for t in val["text"]]
    score = interpret(predict_raw(model, tokenizer, texts, config.max_length, 128), config)["score"]
    return kendall(score, val[method.target].to_numpy(dtype=float)), seconds


def main():
    params = load_params(ROOT / "params.yaml")
    print("| method | " + " | ".join(f"{r} rows x {e} epochs, {b}" for r, e, b in SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    table = []
    for name in METHODS:
        table.append([val_tau(params, name, *setting) for setting in SETTINGS])
        print(f"| {name} | " + " | ".join(f"{t:.3f} ({s:.0f} s)" for t, s in table[-1]) + " |", flush=True)
    means = [(np.mean([t for t, _ in col]), np.mean([s for _, s in col])) for col in zip(*table)]
    print("| mean | " + " | ".join(f"{t:.3f} ({s:.0f} s)" for t, s in means) + " |")
    print(f"\nKendall tau on the {int((load_frame()['split'] == 'val').sum())} val prompts (training seconds).")


if __name__ == "__main__":
    main()
