"""How long `python -m thinkcount adapt` takes on 2 cores for 1,000 and 5,000 own traces, in all and in its parts: the
base model's predictions (ONNX Runtime), the frozen MiniLM embedding of the prompts the head reads, and the ridge fit
itself (five mixes x four ridge strengths x five folds, then the head).

    python benchmarks/adapt_time.py --base models/m13_rank [--sizes 1000 5000] [--output reports/adapt_time.json]

The traces are synthetic (prompts asking 1 to 6 questions; effort grows with them), written as canonical records."""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinkcount.data.counting import keyword_pattern, rules_from_params  # noqa: E402
from thinkcount.serve.adapt import AdaptSettings, adapt, fit_over, read_traces  # noqa: E402
from thinkcount.serve.head import embed  # noqa: E402
from thinkcount.serve.predict import Predictor  # noqa: E402

TOPICS = ["rivers", "taxes", "bridges", "poems", "engines", "markets", "vaccines", "planets", "novels", "courts"]


def write_traces(path, n, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            questions = int(rng.integers(1, 7))
            topic = TOPICS[i % len(TOPICS)]
            prompt = f"About {topic} ({i}): " + " ".join(f"What is point {q} of {topic}?" for q in range(questions))
            content = "Wait. " * (4 * questions + int(rng.integers(0, 3))) + "\n</think>\n\nDone."
            f.write(json.dumps({"worker_id": 0, "sample_id": i, "instruction": prompt, "input": "",
                                "content": content, "model": "m"}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=str(ROOT / "models/m13_rank"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--output", default=str(ROOT / "reports/adapt_time.json"))
    args = parser.parse_args()
    pattern = keyword_pattern(*rules_from_params(ROOT / "params.yaml"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"traces_{n}.jsonl"
            write_traces(path, n)
            start = time.perf_counter()
            provenance = adapt(args.base, [path], Path(tmp) / f"adapted_{n}", counts_params=ROOT / "params.yaml")
            total = time.perf_counter() - start
            traces, _ = read_traces([path], pattern)
            predictor = Predictor.load(args.base, device="cpu")
            start = time.perf_counter()
            predictor.predict(traces.prompts)
            predict = time.perf_counter() - start
            base_log = np.log1p([r["expected_counts"] for r in predictor.predict(traces.prompts)])
            settings = AdaptSettings()
            start = time.perf_counter()
            embeddings = embed(settings.embedder, traces.prompts)
            embedding = time.perf_counter() - start
            start = time.perf_counter()
            fit_over(base_log, traces, settings, embeddings)
            ridge = time.perf_counter() - start
            rows.append({"traces": n, "adapt_seconds": round(total, 2), "base_predict_seconds": round(predict, 2),
                         "embed_seconds": round(embedding, 2), "ridge_fit_seconds": round(ridge, 2),
                         "chose": provenance["mix"], "cv_tau": provenance["cv_tau"]})
            print(rows[-1], flush=True)
    Path(args.output).write_text(json.dumps({"base": args.base, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
