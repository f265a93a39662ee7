"""ONNX copies of a trained model for fast CPU serving: fp32 (scores equal to PyTorch's within 1e-4,
tested) and dynamic int8 when train.int8 asks for it (faster, approximate: its agreement with fp32 is measured at train
time).

The encoder, masked mean pooling and head are exported as one graph with dynamic batch and length."""
import warnings
from pathlib import Path

import numpy as np
import torch

from thinkcount.methods import modelfolder
from thinkcount.serve.onnx_runtime import FP32, INT8, OnnxModel


class Logits(torch.nn.Module):
    """The model with a plain tensor output, as the exporter wants."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def save_model(folder, model, tokenizer, label_config, int8=False):
    """Everything of a model folder but its seal: weights, tokenizer and label configuration, then the ONNX
    copies serving runs."""
    modelfolder.write_model(folder, model, tokenizer, label_config)
    export(model, tokenizer, folder, int8=int8)


def export(model, tokenizer, folder, int8=False):
    """Write model.onnx (fused where that keeps the outputs) into folder, and with int8 model.int8.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    folder = Path(folder)
    model = model.eval().cpu()
    sample = tokenizer(["an example prompt", "two"], padding=True, return_tensors="pt", return_token_type_ids=False)
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditionals on shapes
        torch.onnx.export(Logits(model), (sample["input_ids"], sample["attention_mask"]), folder / FP32,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    if int8:
        quantize_dynamic(folder / FP32, folder / INT8, weight_type=QuantType.QInt8)  # from the plain graph
    fuse(folder / FP32, model.encoder.config, tokenizer)


def fuse(path, config, tokenizer, tolerance=1e-5):
    """Replace the graph at path with ONNX Runtime's transformer fusions (bias+GELU, skip+LayerNorm: about a
    fifth faster at batch 1 on 2 cores), but only when the fused graph gives the same outputs on a sample."""
    from onnxruntime.transformers import optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size)
    candidate = Path(path).with_suffix(".fused.onnx")
    fused.save_model_to_file(str(candidate))
    sample = tokenizer(["Explain how vaccines work, step by step.", "Hi"], padding=True, return_tensors="np",
                       return_token_type_ids=False)
    outputs = [OnnxModel(p).logits(sample["input_ids"], sample["attention_mask"]) for p in (path, candidate)]
    if np.abs(outputs[0] - outputs[1]).max() <= tolerance:
        candidate.replace(path)
    else:
        candidate.unlink()


def int8_agreement(folder, tokenizer, texts, config):
    """Kendall tau between the scores of the int8 and fp32 copies on texts (prepared as for the model)."""
    from scipy.stats import kendalltau

    from thinkcount.methods.inference import interpret, predict_raw
    scores = [interpret(predict_raw(OnnxModel(Path(folder) / name), tokenizer, texts, config.max_length),
                        config)["score"] for name in (FP32, INT8)]
    return float(kendalltau(*scores).statistic)
