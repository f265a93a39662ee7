"""Counts, filters and the shared split: the data half of the pipeline."""
import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from thinkcount import UserError
from thinkcount.data.counting import (count_keywords, count_waits, keyword_pattern, lacks_opening_tag, prompt_id,
                                      prompt_text, think_text, wait_pattern)

KEY = ["worker_id", "sample_id"]


def compute_counts(records, rules):
    """One row per record: prompt text and its id, the model that answered (None when unknown), whether the
    trace was cut at the token limit, counts, wait_counts, think_chars (by rules, the `counts` params:
    keywords, case_sensitive, think_start) and the export's reasoning_tokens (None where it has none)."""
    keys, waits = keyword_pattern(rules.keywords, rules.case_sensitive), wait_pattern(rules.case_sensitive)
    texts = [prompt_text(r["instruction"], r["input"]) for r in records]
    # Served traffic's finish time and the served predictor's score, where the records have them (data.source
    # served); other corpora's frames stay as they were.
    served = {key: [r.get(key) for r in records] for key in ("time", "served_score", "served_expected")
              if any(key in r for r in records)}
    return pd.DataFrame({
        "worker_id": [r["worker_id"] for r in records],
        "sample_id": [r["sample_id"] for r in records],
        "text": texts,
        "prompt_id": [prompt_id(t) for t in texts],
        "model": [r.get("model") for r in records],
        "truncated": [bool(r.get("truncated", False)) for r in records],
        "counts": [count_keywords(r["content"], keys) for r in records],
        "wait_counts": [count_waits(r["content"], rules.think_start, waits) for r in records],
        "think_chars": [len(think_text(r["content"])) for r in records],
        "reasoning_tokens": [r.get("reasoning_tokens") for r in records],
        "trace_chars": [len(r["content"]) for r in records],
        **served,
    })


def oracle_tau(counts, oracle_rows):
    """Kendall tau-b of the generator's expected counts against the realised counts."""
    oracle = pd.DataFrame(oracle_rows)
    merged = counts.merge(oracle, on=KEY, how="inner")
    if len(merged) != len(counts):
        raise UserError(f"oracle covers {len(merged)} of {len(counts)} records.")
    return float(kendalltau(merged["expected_counts"], merged["counts"]).statistic)


def filter_variants(counts, max_counts, long_think_chars, max_long_waits, keep_truncated=False):
    """Return {variant: (kept frame, report)}; every dropped row is counted by reason. A trace cut at the token
    limit is censored (its counts are a lower bound): left out of every variant unless keep_truncated."""
    n = len(counts)
    cut = counts["truncated"].to_numpy(bool) if "truncated" in counts and not keep_truncated else np.zeros(n, bool)
    over = counts["counts"] > max_counts
    long_few = (counts["think_chars"] >= long_think_chars) & (counts["wait_counts"] <= max_long_waits)
    variants = {
        "all": (np.ones(n, dtype=bool), {}),
        "clean": (~over, {f"counts_above_{max_counts}": int((over & ~cut).sum())}),
        "wait_only": (~long_few, {f"think_chars_ge_{long_think_chars}_and_wait_counts_le_{max_long_waits}":
                                  int((long_few & ~cut).sum())}),
    }
    out = {}
    for name, (keep, dropped) in variants.items():
        kept = counts[keep & ~cut].reset_index(drop=True)
        out[name] = (kept, {"rows_in": n, "rows_kept": len(kept), "rows_dropped": n - len(kept),
                            "dropped_by_reason": {"truncated": int(cut.sum()), **dropped}})
    return out


# Fewest prompts a split may hold: below this, early stopping and Kendall tau's interval mean little.
MIN_SPLIT_PROMPTS = 10


def make_split(counts, seed, val_fraction, test_fraction, strata):
    """Seeded train/val/test split by prompt: every row of one prompt_id (all its models and samples) lands in
    one split. Keyed by (worker_id, sample_id), with each record's priority under a row budget (within_budget).

    Prompts are stratified by the models that answered them and, within those, by mean log counts quantile;
    each split gets exactly round(fraction * prompts) prompts, shared among strata by largest remainder.
    A frame without prompt_id splits by row."""
    rng = np.random.default_rng(seed)
    codes, stratum = prompt_strata(counts, strata)
    sizes = np.bincount(stratum)
    n_test = allocate(sizes, test_fraction, sizes)
    n_val = allocate(sizes, val_fraction, sizes - n_test)
    check_split_sizes(len(stratum), n_test.sum(), n_val.sum(), min(val_fraction, test_fraction))
    prompt_split = np.empty(len(stratum), dtype=object)
    for s in range(len(sizes)):
        idx = rng.permutation(np.flatnonzero(stratum == s))
        prompt_split[idx[:n_test[s]]] = "test"
        prompt_split[idx[n_test[s]:n_test[s] + n_val[s]]] = "val"
        prompt_split[idx[n_test[s] + n_val[s]:]] = "train"
    # One seeded order of all records: a row budget takes rows in this order, so every method and
    # baseline capped at N train rows of a variant trains on the same rows.
    priority = rng.permutation(len(counts))
    return pd.DataFrame({"worker_id": counts["worker_id"], "sample_id": counts["sample_id"],
                         "split": prompt_split[codes], "priority": priority})


def time_split(counts, seed, val_fraction, test_fraction):
    """Train on older traffic, test on newer: prompts in order of their first request's time; the newest
    round(test_fraction x prompts) are test, the round(val_fraction x prompts) before them val, the rest train,
    with every prompt that has no time (public traces mixed in). Keyed and prioritised as make_split."""
    if "time" not in counts:
        raise UserError("split.by: time needs a corpus whose records have times (data.source: served).")
    rng = np.random.default_rng(seed)
    codes = pd.factorize(counts["prompt_id"])[0]
    first = pd.Series(pd.to_numeric(counts["time"], errors="coerce").to_numpy()).groupby(codes).min()
    timed = first.dropna().sort_values(kind="stable").index.to_numpy()
    n = len(timed)
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    check_split_sizes(n, n_test, n_val, min(val_fraction, test_fraction))
    prompt_split = np.full(codes.max() + 1, "train", dtype=object)
    prompt_split[timed[n - n_test:]] = "test"
    prompt_split[timed[n - n_test - n_val:n - n_test]] = "val"
    return pd.DataFrame({"worker_id": counts["worker_id"], "sample_id": counts["sample_id"],
                         "split": prompt_split[codes], "priority": rng.permutation(len(counts))})


def prompt_strata(counts, strata):
    """(each row's prompt index, each prompt's stratum), prompts in order of first appearance: one stratum per
    set of answering models and mean log counts quantile within it (ranked first, so that heavy ties, such as
    many counts of 1, still give equal-sized strata)."""
    ids = counts["prompt_id"] if "prompt_id" in counts else pd.Series(np.arange(len(counts)))
    codes = pd.factorize(ids)[0]
    mean_log = np.bincount(codes, np.log1p(counts["counts"].to_numpy(float))) / np.bincount(codes)
    models = counts["model"].fillna("") if "model" in counts else pd.Series("", index=counts.index)
    model_sets = pd.factorize(models.groupby(codes).agg(lambda m: "|".join(sorted(set(m)))).sort_index())[0]
    stratum, offset = np.empty(len(mean_log), dtype=int), 0
    for m in range(model_sets.max() + 1):
        members = np.flatnonzero(model_sets == m)
        ranks = pd.Series(mean_log[members]).rank(method="first")
        stratum[members] = offset + pd.qcut(ranks, min(strata, len(members)), labels=False).to_numpy()
        offset = stratum[members].max() + 1
    return codes, stratum


def within_budget(rows, n):
    """The first n rows in the split's priority order: the shared subsample under a row budget."""
    return rows.nsmallest(n, "priority") if len(rows) > n else rows


def allocate(sizes, fraction, room):
    """Rows per stratum for one split: round(fraction * total) in all, by largest remainder, within room."""
    quotas = sizes * fraction
    rows = np.minimum(np.floor(quotas).astype(int), room)
    missing = int(round(quotas.sum())) - rows.sum()
    for s in np.argsort(-(quotas - rows), kind="stable"):
        if missing <= 0:
            break
        if rows[s] < room[s]:
            rows[s] += 1
            missing -= 1
    return rows


def check_split_sizes(n, n_test, n_val, smallest_fraction):
    sizes = {"train": n - n_test - n_val, "val": n_val, "test": n_test}
    small = {name: int(k) for name, k in sizes.items() if k < MIN_SPLIT_PROMPTS}
    if small:
        needed = int(np.ceil((MIN_SPLIT_PROMPTS - 0.5) / smallest_fraction))  # round() reaches the minimum here
        raise UserError(f"{n} distinct prompts give {', '.join(f'{k} {name}' for name, k in small.items())} prompts; "
                        f"train, val and test each need at least {MIN_SPLIT_PROMPTS}, so at these fractions at least "
                        f"{needed} distinct prompts.")


QUANTILES = [25, 50, 75, 90, 95, 99]


def counts_report(records, counts, think_start):
    """Quantiles of each target, and how many traces lack the opening tag (with a warning when that
    matters: under the strict `tag` rule such traces all get wait_counts 1)."""
    report = {col: {**{f"p{q}": float(np.percentile(counts[col], q)) for q in QUANTILES},
                    "max": int(counts[col].max()), "mean": float(counts[col].mean())}
              for col in ("counts", "wait_counts", "think_chars")}
    no_open = sum(lacks_opening_tag(r["content"]) for r in records)
    report.update(rows=len(counts), records_without_opening_tag=no_open)
    warning = None
    if think_start == "tag" and no_open > len(records) / 2:
        warning = (f"{no_open} of {len(records)} traces have </think> without <think>; under counts.think_start: "
                   "tag their wait_counts is 1; set counts.think_start: tag_or_start for R1-style exports.")
    return report, warning
