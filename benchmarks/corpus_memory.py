"""Peak memory of the corpus stage reading a user's file, against the file's size.

    python benchmarks/corpus_memory.py [MiB]     # default 100; also run by benchmarks/run.py (make bench)

The stage runs as dvc runs it, in a scratch project whose data.source is a generated JSON Lines file,
once on that file and once on a 1 MiB file (the floor: interpreter, imports, the generator's word
lists). The increment over the floor is what the input costs; the target is about twice its size (the
text held once while parsing plus the records read)."""
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORDS = "Okay so Wait Hmm then first compute correct the a of prompt answer step check".split()
# The stage is the measuring process's only child, so RUSAGE_CHILDREN's maximum is the stage's peak.
MEASURE = ("import resource, subprocess, sys; proc = subprocess.run([sys.executable, '-m', 'stages.corpus'], "
           "capture_output=True); print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_corpus(path, mib, seed=0):
    rng = random.Random(seed)
    size, i = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while size < mib * 2 ** 20:
            content = " ".join(rng.choice(WORDS) for _ in range(1500)) + "\n</think>\n\nAnswer."
            line = json.dumps({"worker_id": i % 8, "sample_id": i, "instruction": f"Explain topic {i}.",
                               "input": "", "content": content}) + "\n"
            f.write(line)
            size, i = size + len(line), i + 1
    return size


def peak_mib(project):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", MEASURE], cwd=project, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] != "0":
        raise SystemExit(f"corpus stage failed in {project}")
    return int(out[1]) / 1024  # ru_maxrss is in KiB on Linux


def measure(mib=100):
    """{input_mib, peak_mib, floor_mib, increment_over_input}: the corpus stage on mib MiB of records."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("floor", 1), ("input", mib)):
            project = Path(tmp) / name
            (project / "data/external").mkdir(parents=True)
            result[f"{name}_bytes"] = write_corpus(project / "data/external/corpus.jsonl", size)
            params["data"]["source"] = "data/external/corpus.jsonl"
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            result[f"{name}_peak_mib"] = peak_mib(project)
    input_mib = result["input_bytes"] / 2 ** 20
    return {"input_mib": round(input_mib, 1), "peak_mib": round(result["input_peak_mib"], 1),
            "floor_mib": round(result["floor_peak_mib"], 1),
            "increment_over_input": round((result["input_peak_mib"] - result["floor_peak_mib"]) / input_mib, 2)}


if __name__ == "__main__":
    print(json.dumps(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 100), indent=2))
