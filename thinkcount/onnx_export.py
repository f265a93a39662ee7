"""ONNX copies of a trained model for fast CPU serving: fp32 (scores equal to PyTorch's within 1e-4,
tested) and dynamic int8 (faster, approximate: its agreement with fp32 is measured at train time).

The encoder, masked mean pooling and head are exported as one graph with dynamic batch and length."""
import warnings
from pathlib import Path

import numpy as np
import torch

FP32, INT8 = "model.onnx", "model.int8.onnx"


class Logits(torch.nn.Module):
    """The model with a plain tensor output, as the exporter wants."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model, tokenizer, folder):
    """Write model.onnx and model.int8.onnx into folder; return their paths."""
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
    quantize_dynamic(folder / FP32, folder / INT8, weight_type=QuantType.QInt8)
    return folder / FP32, folder / INT8


class OnnxModel:
    """An ONNX Runtime session that answers like ComplexityModel for predict_raw's loop."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.n_outputs = self.session.get_outputs()[0].shape[-1]

    def logits(self, input_ids, attention_mask):
        feed = {"input_ids": np.asarray(input_ids, dtype=np.int64),
                "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        return self.session.run(["logits"], feed)[0]


def int8_agreement(folder, tokenizer, texts, config):
    """Kendall tau between the scores of the int8 and fp32 copies on texts (prepared as for the model)."""
    from scipy.stats import kendalltau
    from thinkcount.inference import interpret, predict_raw
    scores = [interpret(predict_raw(OnnxModel(Path(folder) / name), tokenizer, texts, config["max_length"]),
                        config)["score"] for name in (FP32, INT8)]
    return float(kendalltau(*scores).statistic)
