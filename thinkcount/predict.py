"""Use a trained model on new prompts, without DVC or the training data.

    from thinkcount.predict import Predictor
    predictor = Predictor.load("models/m13_rank")
    predictor.predict(["Explain how vaccines work."])

    python -m thinkcount.predict --model models/m13_rank "Explain how vaccines work." "List three fruits."
    python -m thinkcount.predict --model models/m13_rank --input prompts.jsonl --output predictions.jsonl
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from thinkcount import UserError
from thinkcount.counting import prompt_text
from thinkcount.features import prepare_text
from thinkcount.inference import best_device, predict_raw, prediction_records
from thinkcount.jsonl import read_json, read_jsonl
from thinkcount.labelconfig import LabelConfig
from thinkcount.models import ComplexityModel
from thinkcount.onnx_export import FP32, INT8, OnnxModel


class Predictor:
    """A trained thinkcount model with the label configuration saved beside it."""

    def __init__(self, model, tokenizer, config):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.markers = config.markers

    @classmethod
    def load(cls, folder, device=None, int8=False, backend="auto"):
        """backend auto serves the model's ONNX copy with ONNX Runtime on the CPU when there is one (scores
        equal to PyTorch's within 1e-4), else PyTorch; int8 serves the dynamically quantized ONNX copy
        (faster, approximate: its agreement with fp32 is in metrics/train/<method>.json)."""
        folder = Path(folder)
        if folder.is_file():
            raise UserError(f"{folder} is a file; give a trained model folder such as models/m13_rank.")
        if not folder.is_dir():
            raise UserError(f"{folder}: no such model folder; train it with `dvc repro train@{folder.name}`.")
        if not (folder / "label_config.json").is_file():
            raise UserError(f"{folder}: no label_config.json; is this a thinkcount model folder?")
        device = torch.device(device) if device else best_device()
        onnx_file = folder / (INT8 if int8 else FP32)
        if backend == "auto":
            backend = "onnx" if device.type == "cpu" and onnx_file.is_file() else "torch"
        if (int8 or backend == "onnx") and (device.type != "cpu" or not onnx_file.is_file()):
            raise UserError(f"{folder}: ONNX serving{' in int8' if int8 else ''} runs on the CPU from "
                            f"{onnx_file.name}, which this {'device' if device.type != 'cpu' else 'folder'} "
                            "lacks; retrain with `dvc repro train@<method>` or use the torch backend.")
        if backend == "onnx":
            model, tokenizer = OnnxModel(onnx_file), AutoTokenizer.from_pretrained(folder / "encoder")
        else:
            model, tokenizer = ComplexityModel.load(folder)
            model = model.to(device)
        return cls(model, tokenizer, LabelConfig.from_dict(read_json(folder / "label_config.json")))

    def predict(self, prompts, batch_size=64, progress=False):
        """One dict per prompt: score, expected_counts and, for classifiers, label, label_name, probs."""
        if isinstance(prompts, str):
            raise UserError("predict takes a list of prompts, not one string.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"batch_size must be a positive integer, got {batch_size!r}.")
        prompts = list(prompts)  # a generator, tuple or numpy array of strings works too
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise UserError(f"prompt {i} is empty or not a string.")
        if not prompts:
            return []
        texts = [prepare_text(p, self.markers) for p in prompts]
        raw = predict_raw(self.model, self.tokenizer, texts, self.config.max_length, batch_size, progress=progress)
        return prediction_records(raw, self.config)


def read_prompts(path):
    """Prompts from a JSONL file with `instruction` and optional `input`; any bad line stops the run."""
    prompts = []
    for line_no, obj in read_jsonl(path):
        instruction = obj.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise UserError(f"{path}, line {line_no}: no `instruction` text.")
        input_text = obj.get("input") or ""
        if not isinstance(input_text, str):
            raise UserError(f"{path}, line {line_no}: `input` is not text.")
        prompts.append(prompt_text(instruction, input_text))
    return prompts


def check_output(path):
    """Before any work: the output must be a file path; its folder is created if missing."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file path such as {path / 'scores.jsonl'}.")
    path.parent.mkdir(parents=True, exist_ok=True)


def write_atomically(path, text):
    """Write to a temporary file beside path, then rename: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder, e.g. models/m13_rank")
    parser.add_argument("--input", help="JSONL file with `instruction` and optional `input` per line")
    parser.add_argument("--output", help="write JSONL here instead of standard output")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--int8", action="store_true", help="the dynamic int8 ONNX copy on CPU: faster, approximate")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                        help="auto: ONNX Runtime on the CPU when the model has an ONNX copy, else PyTorch")
    parser.add_argument("prompts", nargs="*", help="prompts to score")
    args = parser.parse_args(argv)
    try:
        if bool(args.input) == bool(args.prompts):
            raise UserError("give prompts on the command line or --input FILE, not both or neither.")
        if args.batch_size < 1:
            raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}.")
        prompts = read_prompts(args.input) if args.input else args.prompts
        if not prompts:
            raise UserError(f"{args.input}: no prompts to score.")
        check_output(args.output)
        predictor = Predictor.load(args.model, int8=args.int8, backend=args.backend)
        results = predictor.predict(prompts, args.batch_size, progress=bool(args.input))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    lines = "".join(json.dumps({"prompt": p, **r}, ensure_ascii=False) + "\n" for p, r in zip(prompts, results))
    if args.output:
        write_atomically(args.output, lines)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
