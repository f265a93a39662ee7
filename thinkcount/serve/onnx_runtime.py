"""A model's ONNX copy served by ONNX Runtime on the CPU: no torch in the process that only scores.

OnnxModel answers like ComplexityModel (methods/models.py): `logits(input_ids, attention_mask)` on arrays, and
`n_outputs`, so methods.inference.predict_raw runs either."""
import os

import numpy as np

FP32, INT8 = "model.onnx", "model.int8.onnx"


class OnnxModel:
    """An ONNX Runtime session that answers like ComplexityModel for predict_raw's loop."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        # ONNX Runtime's default thread count measured slower at batch 1 than one thread per core here.
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        # Its threads busy-wait after each run by default, taking the cores from the tokenizer, the service's event
        # loop and its clients between batches (p99 latency of the service on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.n_outputs = self.session.get_outputs()[0].shape[-1]

    def logits(self, input_ids, attention_mask):
        feed = {"input_ids": np.asarray(input_ids, dtype=np.int64),
                "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        return self.session.run(["logits"], feed)[0]
