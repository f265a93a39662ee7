"""Stage heldout@<method>: the method trained once per held-out source and per held-out model family (the largest
heldout.families), each time on the rest, and scored on the group left out (thinkcount/evaluate/heldout.py). A
corpus of one source and no named models (the embedded one) has no group to hold out, and the file says so."""
import sys
import tempfile

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import write_json
from thinkcount.data.features import frame_texts, prepare_text
from thinkcount.data.frames import load_frame, mean_of_samples, require_target
from thinkcount.evaluate.heldout import fold, fold_scores, held_out_groups, summary
from thinkcount.methods.inference import best_device, predict_raw, prediction_records
from thinkcount.methods.labels import make_labels
from thinkcount.methods.training import train_method
from thinkcount.pipeline import stage


def train_and_score(params, name, frame):
    """Train name on a fold's train and val rows; fold_scores on its test rows."""
    method = params.methods[name]
    if params.train.sample_mean:
        frame = frame.assign(**{method.target: mean_of_samples(frame, method.target)})
    labels, config = make_labels(frame, method, params.train.seed, name, params.features)
    rows = frame.assign(label=labels, text=frame_texts(frame, config.model_token))
    with tempfile.TemporaryDirectory() as out:
        model, tokenizer, settings, _, config = train_method(params, name, rows, config, out, progress=False)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    texts = [prepare_text(t, config.markers) for t in frame_texts(test, config.model_token)]
    raw = predict_raw(model.to(best_device()), tokenizer, texts, settings.max_length, params.train.eval_batch_size)
    return fold_scores([r["score"] for r in prediction_records(raw, config)], test)


def main(params):
    name = sys.argv[1] if len(sys.argv) > 1 else "(none)"
    if name not in params.heldout.methods or name not in params.methods:
        raise UserError(f"heldout: '{name}' is not one of heldout.methods ({', '.join(params.heldout.methods)}).")
    spec = params.heldout
    frame = require_target(load_frame(params.methods[name].variant), params.methods[name].target)
    result = {"method": name, "settings": spec.model_dump()}
    for by, most in (("source", spec.sources), ("family", spec.families)):
        labels, groups = held_out_groups(frame, by, spec.min_traces, most)
        folds = {}
        for held in groups:
            folds[held] = train_and_score(params, name, fold(frame, labels, held, spec.max_test, spec.seed))
            print(f"heldout {name} {by} {held}: {folds[held]}", flush=True)
        result[by] = {"folds": folds, **(summary(folds) if folds else
                                         {"undefined": f"no {by} to hold out: one needs {spec.min_traces} "
                                                       "complete traces, and the embedded corpus (one source, no "
                                                       "model names) has none"})}
    write_json(paths.heldout(name), result)


if __name__ == "__main__":
    stage.run(main)
