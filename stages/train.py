"""Stage train@<method>: fine-tune the method's model, save it, predict every val and test prompt."""
import os
import time

import pandas as pd
from dvclive import Live

from thinkcount.core import paths
from thinkcount.core.jsonl import load_jsonl, read_json, write_json, write_jsonl
from thinkcount.data.features import frame_texts, prepare_text
from thinkcount.data.frames import load_frame
from thinkcount.data.records import KEY
from thinkcount.methods import modelfolder
from thinkcount.methods.inference import best_device, predict_raw, prediction_records
from thinkcount.methods.labelconfig import LabelConfig
from thinkcount.methods.launch import launch_command
from thinkcount.methods.modelcard import write_model_card
from thinkcount.methods.training import train_method
from thinkcount.pipeline import launcher, stage
from thinkcount.serve.onnx_export import int8_agreement, save_model


def main(params):
    name = stage.method_name(params)
    final = paths.model(name)
    if "LOCAL_RANK" not in os.environ:  # before torchrun starts the ranks that write into it
        modelfolder.clear_partial(final)
    command = launch_command(params.train, name)
    if command:
        os.execv(command[0], command)
    is_main = int(os.environ.get("RANK", "0")) == 0
    rows = pd.DataFrame(load_jsonl(paths.labels(name)))
    label_config = LabelConfig.from_dict(read_json(paths.label_config(name)))
    out_dir = modelfolder.partial_path(final)
    live = Live(dir=paths.train_log(name), dvcyaml=False, save_dvc_exp=False, report=None) if is_main else None
    start = time.time()
    model, tokenizer, settings, history, label_config = train_method(params, name, rows, label_config, out_dir, live)
    seconds = time.time() - start
    if live is not None:
        live.end()
    if not is_main:
        return
    save_model(out_dir, model, tokenizer, label_config, int8=params.train.int8)

    prompts = load_frame()
    prompts = prompts[prompts["split"].isin(["val", "test"])].reset_index(drop=True)
    markers = label_config.markers
    texts = [prepare_text(t, markers) for t in frame_texts(prompts, label_config.model_token)]
    raw = predict_raw(model.to(best_device()), tokenizer, texts, settings.max_length,
                      params.train.eval_batch_size, progress=True)
    predictions = [{**row, **pred} for row, pred in zip(prompts[KEY + ["split"]].to_dict("records"),
                                                         prediction_records(raw, label_config))]
    write_jsonl(paths.predictions(name), predictions)
    summary = {"model": settings.model, "train_rows": history[0]["train_rows"], "train_seconds": round(seconds, 1),
               "phases": history}
    if params.train.int8:
        test_texts = [t for t, split in zip(texts, prompts["split"]) if split == "test"]
        summary["int8_kendall_tau_vs_fp32"] = int8_agreement(out_dir, tokenizer, test_texts, label_config)
    write_json(paths.train_metrics(name), summary)
    write_model_card(out_dir, name, params.methods[name], settings, summary, label_config)
    if label_config.model_token:
        trained = rows.loc[rows["split"] == "train", KEY].merge(load_frame()[KEY + ["model"]], on=KEY)
        modelfolder.write_training_models(out_dir, trained["model"])
    val = (prompts["split"] == "val") & ~prompts["truncated"].astype(bool)
    modelfolder.write_residuals(out_dir, prompts.loc[val, label_config.target],
                                [p["expected_counts"] for p, v in zip(predictions, val) if v], label_config.target)
    launcher.stop_if_orphaned()
    modelfolder.seal(out_dir, name, label_config)
    modelfolder.publish(out_dir, final)
    print(f"train {name}: {summary}")


if __name__ == "__main__":
    stage.run(main)
