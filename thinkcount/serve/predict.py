"""Use a trained model on new prompts, without DVC or the training data.

    from thinkcount.serve.predict import Predictor
    predictor = Predictor.load("models/m13_rank")
    predictor.predict(["Explain how vaccines work."])

    python -m thinkcount predict --model models/m13_rank "Explain how vaccines work." "List three fruits."
    python -m thinkcount predict --model models/m13_rank --input prompts.jsonl --output predictions.jsonl
"""
import argparse
import copy
import json
import sys
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from thinkcount import UserError
from thinkcount.core.jsonl import atomic_path, case_variant, read_jsonl
from thinkcount.data.counting import prompt_text
from thinkcount.data.features import model_text, prepare_text
from thinkcount.methods.inference import best_device, predict_raw, prediction_records
from thinkcount.methods.modelfolder import MANIFEST, check_folder, loaded
from thinkcount.methods.models import ComplexityModel
from thinkcount.serve.head import AdaptedHead
from thinkcount.serve.onnx_runtime import FP32, INT8, OnnxModel


class Predictor:
    """A trained thinkcount model with the label configuration saved beside it."""

    def __init__(self, model, tokenizer, config, head=None):
        self.model, self.tokenizer, self.config, self.head = model, tokenizer, config, head
        self.markers = config.markers

    @classmethod
    def load(cls, folder, device=None, int8=False, backend="auto", threads=None):
        """backend auto serves the model's ONNX copy with ONNX Runtime on the CPU when there is one (scores
        equal to PyTorch's within 1e-4), else PyTorch; int8 serves the dynamically quantized ONNX copy
        (faster, approximate: its agreement with fp32 is in metrics/train/<method>.json). threads: ONNX Runtime's
        threads per call (default one per core, at most 4).

        The folder must be complete and unchanged since training (modelfolder.check_folder); any part
        that cannot be loaded, or that disagrees with the manifest, stops with one sentence naming it."""
        folder = Path(folder)
        manifest, config = check_folder(folder)
        device = torch.device(device) if device else best_device()
        onnx_file = folder / (INT8 if int8 else FP32)
        if backend == "auto":
            backend = "onnx" if device.type == "cpu" and onnx_file.is_file() else "torch"
        if (int8 or backend == "onnx") and (device.type != "cpu" or not onnx_file.is_file()):
            raise UserError(f"{folder}: ONNX serving{' in int8' if int8 else ''} runs on the CPU from "
                            f"{onnx_file.name}, which this {'device' if device.type != 'cpu' else 'folder'} "
                            "lacks; retrain with `dvc repro train@<method>` or use the torch backend.")
        if backend == "onnx":
            model = loaded(onnx_file, partial(OnnxModel, threads=threads))
            tokenizer = loaded(folder / "encoder", AutoTokenizer.from_pretrained)
        else:
            model, tokenizer = ComplexityModel.load(folder)
            model = model.to(device)
        if model.n_outputs != manifest["n_outputs"]:
            raise UserError(f"{folder}: the {backend} model has {model.n_outputs} outputs but {MANIFEST} says "
                            f"{manifest['n_outputs']}; its parts come from different trainings.")
        return cls(model, tokenizer, config, AdaptedHead.load(folder))

    def replica(self):
        """A predictor for another thread: the same model (ONNX Runtime and torch run concurrent calls) with a
        tokenizer of its own (a fast tokenizer refuses concurrent calls that change its padding settings)."""
        return Predictor(self.model, copy.deepcopy(self.tokenizer), self.config, self.head)

    def predict(self, prompts, batch_size=64, progress=False, model=None):
        """One dict per prompt: score, expected_counts and, for classifiers, label, label_name, probs (an adapted
        model: score, expected_counts and the base's base_expected_counts). A
        model-aware predictor (trained with model_token) needs the name of the model that will answer: one for
        every prompt, or a list with one per prompt."""
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
        models = model if isinstance(model, list) else [model] * len(prompts)
        if self.config.model_token and not (len(models) == len(prompts)
                                            and all(isinstance(m, str) and m for m in models)):
            raise UserError("this predictor is model-aware (trained with model_token); give the answering model's "
                            "name, as in its training data (model=..., one name or one per prompt).")
        texts = [prepare_text(model_text(p, m) if self.config.model_token else p, self.markers)
                 for p, m in zip(prompts, models)]
        raw = predict_raw(self.model, self.tokenizer, texts, self.config.max_length, batch_size, progress=progress)
        records = prediction_records(raw, self.config)
        # An adapted folder's head reads the base's prediction and the prompt (thinkcount/serve/head.py).
        return self.head.apply(prompts, models, records) if self.head else records


FIELDS = ("instruction", "input")
CHUNK = 2048  # prompts read, scored and written at a time: memory stays flat for any input size


def read_prompts(path):
    """Yield the prompts of a JSONL file with `instruction` and optional `input`, streamed; any bad line
    (not UTF-8, a lone surrogate, not a JSON object, a missing or non-text field, a key such as `Input`
    that differs from a field only by case) stops the run with one sentence naming it."""
    for line_no, obj in read_jsonl(path):
        variant = case_variant(obj, FIELDS)
        if variant:
            raise UserError(f"{path}, line {line_no}: key `{variant}` differs from "
                            f"`{variant.lower()}` only by case; rename it.")
        instruction = obj.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise UserError(f"{path}, line {line_no}: no `instruction` text.")
        input_text = obj.get("input") or ""
        if not isinstance(input_text, str):
            raise UserError(f"{path}, line {line_no}: `input` is not text.")
        yield prompt_text(instruction, input_text)


def check_output(path):
    """Before any work: the output must be a file path; its folder is created if missing."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file path such as {path / 'scores.jsonl'}.")
    path.parent.mkdir(parents=True, exist_ok=True)


def chunks(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_lines(predictor, prompts, batch_size, total, progress):
    """JSON lines of scored prompts, CHUNK prompts at a time."""
    with tqdm(total=total, desc="score", unit="prompt", disable=not progress) as bar:
        for batch in chunks(prompts, CHUNK):
            for prompt, result in zip(batch, predictor.predict(batch, batch_size)):
                yield json.dumps({"prompt": prompt, **result}, ensure_ascii=False) + "\n"
            bar.update(len(batch))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder, e.g. models/m13_rank")
    parser.add_argument("--input", help="JSONL file with `instruction` and optional `input` per line")
    parser.add_argument("--output", help="write JSONL here (whole, by rename) instead of standard output")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--int8", action="store_true", help="the dynamic int8 ONNX copy on CPU: faster, approximate")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                        help="auto: ONNX Runtime on the CPU when the model has an ONNX copy, else PyTorch")
    parser.add_argument("prompts", nargs="*", help="prompts to score")
    run(parser.parse_args(argv))


def run(args):
    if bool(args.input) == bool(args.prompts):
        raise UserError("give prompts on the command line or --input FILE, not both or neither.")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    # A first pass checks every line before the model loads or anything is written.
    total = sum(1 for _ in read_prompts(args.input)) if args.input else len(args.prompts)
    if total == 0:
        raise UserError(f"{args.input}: no prompts to score.")
    check_output(args.output)
    hf_logging.disable_progress_bar()  # a sub-second load; stderr keeps only errors
    predictor = Predictor.load(args.model, int8=args.int8, backend=args.backend)
    prompts = read_prompts(args.input) if args.input else args.prompts
    lines = score_lines(predictor, prompts, args.batch_size, total, progress=bool(args.input))
    if args.output:
        with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
