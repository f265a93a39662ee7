"""Stage baseline@<name>: a baseline or control scored with the shared yardstick on the methods' train rows."""
import sys

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import write_json, write_jsonl
from thinkcount.data.frames import load_frame, require_target, variant_rows
from thinkcount.data.records import KEY, within_budget
from thinkcount.evaluate.baselines import FIXED, baseline_scores
from thinkcount.evaluate.metrics import yardstick_both
from thinkcount.pipeline import stage


def main(params):
    name = sys.argv[1]
    spec = params.baselines.get(name)
    if spec is None:
        raise UserError(f"unknown baseline '{name}'; params.yaml defines {', '.join(params.baselines)}.")
    # Train on a variant's rows as the methods do (truncated traces are censored there); test on every prompt.
    target = spec.target
    frame = require_target(load_frame(), target)
    train = variant_rows(frame, spec.variant)
    train, test = train[train["split"] == "train"], frame[frame["split"] == "test"].reset_index(drop=True)
    if spec.train_rows == "budget":
        train = within_budget(train, params.train.max_train_rows)
    result = {"method": name, "kind": spec.kind, "task": "baseline", "target": target,
              "train_rows": None if spec.kind in FIXED else len(train), "train_rows_rule": spec.train_rows}
    if spec.kind in FIXED:
        got = FIXED[spec.kind](test)
        if got is None:
            write_json(paths.eval_metrics(name), {**result, "available": False})
            write_jsonl(paths.predictions(name), [])
            print(f"baseline {name}: not available for this corpus")
            return
        score, expected = got
    else:
        score, expected = baseline_scores(spec, train, test, (params.model, params.encoders[params.model]))
    ev = params.evaluate
    result["yardstick"] = yardstick_both(score, expected, test, target, params.filter.max_counts, ev.bootstrap,
                                         ev.seed)
    predictions = test[KEY + ["split"]].assign(score=score, expected_counts=expected)
    write_jsonl(paths.predictions(name), predictions.to_dict("records"))
    write_json(paths.eval_metrics(name), result)
    print(f"baseline {name}: tau {result['yardstick']['all']['kendall_tau']}")


if __name__ == "__main__":
    stage.run(main)
