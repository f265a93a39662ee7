"""Counts, filters and the shared split: the data half of the pipeline."""
import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from thinkcount import UserError
from thinkcount.counting import count_keywords, count_waits, keyword_pattern, prompt_text, think_text

KEY = ["worker_id", "sample_id"]


def compute_counts(records, keywords):
    pattern = keyword_pattern(keywords)
    return pd.DataFrame({
        "worker_id": [r["worker_id"] for r in records],
        "sample_id": [r["sample_id"] for r in records],
        "text": [prompt_text(r["instruction"], r["input"]) for r in records],
        "counts": [count_keywords(r["content"], pattern) for r in records],
        "wait_counts": [count_waits(r["content"]) for r in records],
        "think_chars": [len(think_text(r["content"])) for r in records],
    })


def oracle_tau(counts, oracle_rows):
    """Kendall tau-b of the generator's expected counts against the realised counts."""
    oracle = pd.DataFrame(oracle_rows)
    merged = counts.merge(oracle, on=KEY, how="inner")
    if len(merged) != len(counts):
        raise UserError(f"oracle covers {len(merged)} of {len(counts)} records.")
    return float(kendalltau(merged["expected_counts"], merged["counts"]).statistic)


def filter_variants(counts, max_counts, long_think_chars, max_long_waits):
    """Return {variant: (kept frame, report)}; every dropped row is counted by reason."""
    n = len(counts)
    over = counts["counts"] > max_counts
    long_few = (counts["think_chars"] >= long_think_chars) & (counts["wait_counts"] <= max_long_waits)
    variants = {
        "all": (np.ones(n, dtype=bool), {}),
        "clean": (~over, {f"counts_above_{max_counts}": int(over.sum())}),
        "wait_only": (~long_few, {f"think_chars_ge_{long_think_chars}_and_wait_counts_le_{max_long_waits}":
                                  int(long_few.sum())}),
    }
    out = {}
    for name, (keep, dropped) in variants.items():
        kept = counts[keep].reset_index(drop=True)
        out[name] = (kept, {"rows_in": n, "rows_kept": len(kept), "rows_dropped": n - len(kept),
                            "dropped_by_reason": dropped})
    return out


def make_split(counts, seed, val_fraction, test_fraction, strata):
    """Seeded train/val/test split stratified by counts decile, keyed by (worker_id, sample_id)."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError("split.val_fraction and split.test_fraction must be in (0, 1) and sum below 1.")
    rng = np.random.default_rng(seed)
    # Rank first so that heavy ties (many counts of 1) still give equal-sized strata.
    ranks = counts["counts"].rank(method="first")
    stratum = pd.qcut(ranks, min(strata, len(counts)), labels=False)
    split = np.empty(len(counts), dtype=object)
    for s in np.unique(stratum):
        idx = rng.permutation(np.flatnonzero(stratum == s))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "val"
        split[idx[n_test + n_val:]] = "train"
    return pd.DataFrame({"worker_id": counts["worker_id"], "sample_id": counts["sample_id"], "split": split})
