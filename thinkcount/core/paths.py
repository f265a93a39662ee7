"""Every file the pipeline reads and writes, named once. Stages run from the repository root, so these are
relative to it; dvc.yaml declares the same paths (DVC's own file cannot import them)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # the repository: files kept beside the package
REAL_SOURCES = ROOT / "profiles" / "real_sources.tsv"  # the public trace files: URL at a commit, sha256

EXTERNAL = "data/external"                      # optional real prompts the corpus stage draws on
CORPUS, ORACLE = "data/raw/corpus.jsonl", "data/raw/oracle.jsonl"  # generated records; their hidden effort
COUNTS = "data/counts.jsonl"                    # one row per record: text and keyword counts
SPLIT = "data/split.jsonl"                      # train/val/test per row, shared by every method
SUMMARY = "metrics/summary.json"                # the comparison's headline numbers
TAU_PLOT, SERVING_PLOT = "metrics/plots/tau.json", "metrics/plots/serving.json"
SERVING = "metrics/serving.json"                # the engine simulation's sweep
COMPARISON, TAU_PNG, SERVING_PNG = "reports/comparison.md", "reports/tau.png", "reports/serving.png"
SEED_SWEEP = "reports/seed_sweep.md"
CURVES, CURVES_MD, CURVES_PNG = "metrics/curves.json", "reports/curves.md", "reports/curves.png"  # stage curves
METHOD_METRICS = "metrics/methods"              # one JSON per method and baseline: what the sweep reads


def variant(name):
    return f"data/variants/{name}.jsonl"


def data_metrics(name):
    return f"metrics/data/{name}.json"


def labels(method):
    return f"data/labels/{method}/labels.jsonl"


def label_config(method):
    return f"data/labels/{method}/config.json"


def label_metrics(method):
    return f"metrics/labels/{method}.json"


def model(method):
    return f"models/{method}"


def predictions(name):
    return f"data/predictions/{name}.jsonl"


def train_metrics(method):
    return f"metrics/train/{method}.json"


def train_log(method):
    """dvclive's folder for a method's training curves."""
    return f"metrics/train/{method}"


def heldout(method):
    """A finalist's scores on held-out sources and model families (stage heldout)."""
    return f"metrics/heldout/{method}.json"


def eval_metrics(name):
    return f"metrics/eval/{name}.json"


def confusion(method):
    return f"metrics/confusion/{method}.json"


def method_metrics(name):
    return f"{METHOD_METRICS}/{name}.json"


def curve_plot(curve):
    return f"metrics/plots/{curve.replace('/', '_')}.json"
