"""Evaluation on the shared test split: each method's native metrics, and one yardstick for all.

The yardstick ranks test prompts by each method's complexity score and compares that ranking
with the true counts (Kendall tau-b with a bootstrap interval, Spearman), plus the MAE of the
implied counts and ROC-AUC for flagging the top 10% of counts. It is reported on the whole test
split and on its clean part, and for the generator's oracle as the ceiling.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, mean_absolute_error, mean_squared_error,
                             roc_auc_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from thinkcount.data.frames import sample_pairs
from thinkcount.data.records import KEY

UNDEFINED = "undefined"


def kendall(x, y):
    """Kendall tau-b, or None where it is undefined (constant scores or targets): never 0."""
    tau = kendalltau(x, y).statistic
    return None if np.isnan(tau) else float(tau)


# Above this many rows, sorting each resample (n log n) is faster than the pair form's n x n pass.
PAIR_FORM_MAX_ROWS = 4000
PAIR_BLOCK = 512  # rows of the pair matrices held at once


class Resamples:
    """Resamples of a target's rows (arrays of row indices) and what the Kendall tau of any score on them shares.
    `taus(score)` equals `[kendall(score[idx], target[idx]) for idx in indices]`: tau-b is a function of pair
    counts, and a resample's concordant-minus-discordant and tied pair counts are quadratic forms of its row
    multiplicities, so one pass over the n x n pairs serves every resample (thousands of scipy calls took most of
    the compare stage). The multiplicities, the target's pair signs and its tied-pair sums are the same for every
    score, so they are computed once."""

    def __init__(self, target, indices):
        self.target, self.indices = np.asarray(target, float), list(indices)
        n = len(self.target)
        self.pair_form = n <= PAIR_FORM_MAX_ROWS and bool(np.isfinite(self.target).all())
        if self.pair_form:
            self.weights = np.stack([np.bincount(idx, minlength=n) for idx in self.indices]).astype(float)
            self.target_signs = [np.sign(self.target[rows, None] - self.target).astype(np.int8)
                                 for rows in self.blocks()]
            self.target_equal = sum(self.pair_sums(rows, signs == 0)
                                    for rows, signs in zip(self.blocks(), self.target_signs))

    @classmethod
    def bootstrap(cls, target, n_boot, seed):
        """n_boot resamples of the rows with replacement, drawn from a generator seeded with `seed`."""
        n, rng = len(target), np.random.default_rng(seed)
        return cls(target, [rng.integers(0, n, n) for _ in range(n_boot)])

    def blocks(self):
        """Row slices of the pair matrices held at once."""
        return [slice(start, start + PAIR_BLOCK) for start in range(0, len(self.target), PAIR_BLOCK)]

    def pair_sums(self, rows, pairs):
        """Per resample, the sum of pairs[i, j] weighted by the multiplicities of rows i (in `rows`) and j:
        integers, exact in float64."""
        return ((self.weights[:, rows] @ pairs) * self.weights).sum(axis=1)

    def taus(self, score):
        """Kendall tau-b of score against the target on each resample (None where it is undefined)."""
        x = np.asarray(score, float)
        if not (self.pair_form and np.isfinite(x).all()):
            return [kendall(x[idx], self.target[idx]) for idx in self.indices]
        agreement, x_equal = np.zeros(len(self.indices)), np.zeros(len(self.indices))
        for rows, target_signs in zip(self.blocks(), self.target_signs):  # over ordered pairs
            signs = np.sign(x[rows, None] - x)
            agreement += self.pair_sums(rows, signs * target_signs)
            x_equal += self.pair_sums(rows, signs == 0)
        return [tau_b(len(idx), *(int(round(v)) for v in sums))
                for idx, sums in zip(self.indices, zip(agreement, x_equal, self.target_equal))]


def tau(score, y):
    """Kendall tau-b of score against y; None where undefined (constant scores), never 0."""
    value = kendalltau(score, y).statistic
    return None if np.isnan(value) else float(value)


def tau_within(score, y, models):
    """Kendall tau-b within each answering model, averaged with the models' trace counts as weights (None when no
    model has a defined tau): how well each engine's queue, which holds one model's requests, would be ordered."""
    models = np.asarray(models)
    taus, weights = [], []
    for model in np.unique(models):
        rows = models == model
        value = tau(score[rows], y[rows]) if rows.sum() > 1 else None
        if value is not None:
            taus.append(value)
            weights.append(rows.sum())
    return float(np.average(taus, weights=weights)) if taus else None


def tau_both(score, y, models):
    """{within: tau within model (the held-out headline), pooled: tau over every model's traces together}."""
    score, y = np.asarray(score, float), np.asarray(y, float)
    return {"within": tau_within(score, y, models), "pooled": tau(score, y)}


def tau_b(size, agreement, x_equal, y_equal):
    """Kendall tau-b from ordered-pair sums over `size` values (x_equal and y_equal count each value with
    itself), by scipy's formula so that the floats match; None where every pair ties."""
    total, x_ties, y_ties = size * (size - 1) // 2, (x_equal - size) // 2, (y_equal - size) // 2
    if x_ties == total or y_ties == total:
        return None
    tau = (agreement // 2) / np.sqrt(total - x_ties) / np.sqrt(total - y_ties)
    return float(np.minimum(1.0, max(-1.0, tau)))


def bootstrap_tau(score, target, n_boot, seed):
    """95% percentile interval of Kendall tau-b over bootstrap resamples of the prompts ([None, None] when
    tau is undefined on every resample)."""
    taus = [t for t in Resamples.bootstrap(target, n_boot, seed).taus(score) if t is not None]
    return [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))] if taus else [None, None]


def paired_differences(scores, target, reference, n_boot, seed, alpha=0.05):
    """tau(score) - tau(reference) on the same bootstrap resamples of the prompts, for each score in
    `scores` ({name: array}): {name: {"difference", "ci95", "p", "p_holm", "verdict"}}. p is the two-sided
    bootstrap p-value of a zero difference; the verdict is better or worse when Holm's step-down correction
    over all of `scores` keeps it below alpha, else indistinguishable. Undefined where either tau is."""
    target, reference = np.asarray(target, float), np.asarray(reference, float)
    resamples = Resamples.bootstrap(target, n_boot, seed)
    ref_whole, ref_taus = kendall(reference, target), resamples.taus(reference)
    out = {}
    for name, score in scores.items():
        score = np.asarray(score, float)
        whole = kendall(score, target), ref_whole
        taus = resamples.taus(score)
        diffs = np.array([t - r for t, r in zip(taus, ref_taus) if t is not None and r is not None])
        if None in whole or not len(diffs):
            out[name] = {"difference": None, "ci95": [None, None], "p": None, "p_holm": None, "verdict": UNDEFINED}
            continue
        p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
        out[name] = {"difference": whole[0] - whole[1],
                     "ci95": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))], "p": float(p)}
    for name, p_holm in holm({n: d["p"] for n, d in out.items() if d["p"] is not None}).items():
        difference = out[name]["difference"]
        out[name].update(p_holm=p_holm, verdict="indistinguishable" if p_holm >= alpha or difference == 0
                         else "better" if difference > 0 else "worse")
    return out


def holm(pvalues):
    """Holm's step-down adjusted p-values ({name: p} -> {name: adjusted}): the k-th smallest of m is multiplied
    by m - k + 1, kept monotone and at most 1."""
    adjusted, running = {}, 0.0
    for k, (name, p) in enumerate(sorted(pvalues.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (len(pvalues) - k) * p))
        adjusted[name] = running
    return adjusted


# (prompt, model) pairs with repeated test samples below which the sample ceiling is left undefined.
MIN_CEILING_PAIRS = 20


@dataclass(frozen=True)
class RepeatedSamples:
    """The test rows grouped by (prompt, model) pair, and the rows held out for the sample ceiling: the first
    test sample of every pair that has two or more. Held-out rows do not depend on the target."""
    groups: np.ndarray
    sizes: np.ndarray
    held: np.ndarray

    @classmethod
    def of(cls, test):
        """None for a frame without prompt ids."""
        if "prompt_id" not in test:
            return None
        groups = pd.factorize(sample_pairs(test))[0]
        sizes = np.bincount(groups)
        first = np.unique(groups, return_index=True)[1]
        return cls(groups, sizes, first[sizes[groups[first]] >= 2])

    def others_mean(self, values):
        """At each held-out row, the mean of the same pair's other rows."""
        g = self.groups[self.held]
        return (np.bincount(self.groups, values)[g] - values[self.held]) / (self.sizes[g] - 1)

    def pair_mean(self, values):
        return np.bincount(self.groups, values) / self.sizes


def sample_ceiling(samples, test, target, n_boot, seed):
    """How well the mean of a prompt's other samples from the same model (log1p target) ranks one held-out
    sample: the most a prompt-only predictor can expect when the model samples its trace. None without enough
    repeated samples (samples: RepeatedSamples.of(test))."""
    if samples is None or len(samples.held) < MIN_CEILING_PAIRS:
        return None
    y = np.log1p(test[target].to_numpy(float))
    others = samples.others_mean(y)
    return {"target": target, "pairs": len(samples.held), "kendall_tau": kendall(others, y[samples.held]),
            "kendall_tau_ci95": bootstrap_tau(others, y[samples.held], n_boot, seed)}


def tau_on_pairs(score, y, y_pair_mean, samples):
    """(tau on the ceiling's held-out rows, tau of the pair-mean score against the pair-mean log1p target over
    every (prompt, model) pair): a score judged on the ceiling's rows and against the mean of samples.
    y: the target at every test row; y_pair_mean: samples.pair_mean(np.log1p(y)), the same for every score."""
    score = np.asarray(score, float)
    return kendall(score[samples.held], y[samples.held]), kendall(samples.pair_mean(score), y_pair_mean)


def yardstick(score, expected, truth, target, n_boot=1000, seed=0, top_share=0.1):
    """The comparison every method gets. truth: frame with counts and wait_counts, aligned with score."""
    score, expected = np.asarray(score, float), np.asarray(expected, float)
    y = truth[target].to_numpy(dtype=float)
    other = "wait_counts" if target == "counts" else "counts"  # how the score ranks the other keyword count
    top = y >= np.quantile(y, 1 - top_share)
    return {
        "n": len(y),
        "kendall_tau": kendall(score, y),
        "kendall_tau_ci95": bootstrap_tau(score, y, n_boot, seed),
        "spearman": none_if_nan(spearmanr(score, y).statistic),
        f"kendall_tau_{other}": kendall(score, truth[other].to_numpy(dtype=float)),
        "mae_counts": float(mean_absolute_error(y, expected)),
        "kendall_tau_expected_counts": kendall(expected, y),  # ranking by implied counts instead of the score
        "auc_top10": float(roc_auc_score(top, score)) if 0 < top.sum() < len(top) else None,
    }


def none_if_nan(value):
    return None if np.isnan(value) else float(value)


def yardstick_both(score, expected, truth, target, max_counts, n_boot, seed):
    """The yardstick on the whole test split and on its clean part (counts <= max_counts)."""
    clean = (truth["counts"] <= max_counts).to_numpy()
    return {"all": yardstick(score, expected, truth, target, n_boot, seed),
            "clean": yardstick(np.asarray(score)[clean], np.asarray(expected)[clean], truth[clean], target,
                               n_boot, seed)}


def regression_metrics(pred, truth):
    return {"mse": float(mean_squared_error(truth, pred)), "mae": float(mean_absolute_error(truth, pred))}


def classification_metrics(pred, truth, n_labels, label_names):
    labels = list(range(n_labels))
    per_label = f1_score(truth, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "f1_macro": float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0)),
        "f1_per_label": {name: float(f) for name, f in zip(label_names, per_label)},
    }


def confusion_rows(pred, truth, label_names):
    """Rows for DVC's confusion plot template: one per test prompt."""
    return [{"actual": label_names[t], "predicted": label_names[p]} for t, p in zip(truth, pred)]


def confusion(pred, truth, n_labels):
    return confusion_matrix(truth, pred, labels=list(range(n_labels))).tolist()


def eta_squared(values, labels):
    """Share of the variance of values explained by the labels (between-group / total)."""
    values = np.asarray(values, dtype=float)
    total = ((values - values.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    between = sum(len(g) * (g.mean() - values.mean()) ** 2
                  for g in (values[labels == k] for k in np.unique(labels)))
    return float(between / total)


def leakage_audit(train_texts, train_labels, test_texts, test_labels, seed, features):
    """How well prompt-only features (no counts, no encoder) predict the labels: test accuracy of a
    logistic regression on the FeatureSet `features`."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(features.matrix(list(train_texts)), train_labels)
    return float(accuracy_score(test_labels, model.predict(features.matrix(list(test_texts)))))


def evaluate_method(method, config, test, labels, frame, ev, max_counts, seed):
    """Everything evaluate@<method> reports, and the rows of its confusion plot.

    config: the model's LabelConfig (its audit_features, when set, drive the leakage audit); test: the test
    prompts with the method's predictions (score, expected_counts, label for classifiers); labels: the
    method's labels file; frame: every record's counts and split."""
    target = method.target
    result = {"task": method.task, "loss": method.loss, "labels": describe_labels(config),
              "variant": method.variant, "target": target, "model_token": config.model_token,
              "train_models": method.train_models,
              "yardstick": yardstick_both(test["score"], test["expected_counts"], test, target, max_counts,
                                          ev.bootstrap, ev.seed)}
    native = (labels[labels["split"] == "test"][KEY + ["label"]].rename(columns={"label": "true_label"})
              .merge(test, on=KEY))  # the test rows of the method's own variant, with its own labels
    if method.task == "classification":
        pred, truth = native["label"].to_numpy(int), native["true_label"].to_numpy(int)
        result["native"] = classification_metrics(pred, truth, config.n_labels, list(config.label_names))
        result["native"]["confusion"] = confusion(pred, truth, config.n_labels)
        plot = confusion_rows(pred, truth, list(config.label_names))
    else:
        if method.task == "regression":
            result["native"] = regression_metrics(native["score"].to_numpy(), native["true_label"].to_numpy(float))
            result["native"]["unit"] = "bins" if config.label_stats is not None else target
        else:
            result["native"] = {"kendall_tau_log1p": result["yardstick"]["all"]["kendall_tau"]}
        plot = quintile_confusion(test["score"].to_numpy(), test[target].to_numpy())
    if config.audit_features is not None:
        result["leakage"] = audit(labels, frame, result["native"]["accuracy"], config.audit_features, target,
                                  config.scheme == "kmeans", seed)
    return result, plot


def describe_labels(config):
    if config.scheme in ("raw", "log1p"):
        return f"{config.scheme} {config.target}"
    if config.scheme == "kmeans":
        return f"k-means K={config.k}"
    return f"{config.scheme} bins ({config.n_labels})"


def quintile_confusion(score, target):
    """For methods without classes: quintile of the score against quintile of the true target."""
    bins = lambda x: pd.qcut(pd.Series(x).rank(method="first"), 5, labels=False)  # noqa: E731
    names = [f"Q{i + 1}" for i in range(5)]
    return confusion_rows(bins(score).to_numpy(), bins(target).to_numpy(), names)


def audit(labels, frame, encoder_acc, features, target, from_features, seed):
    """Can the features behind the labels (or markers) reach the encoder's accuracy on their own, and how
    much of the target's variance do the labels explain?"""
    rows = labels.merge(frame[KEY + ["counts", "wait_counts"]], on=KEY)
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    feature_acc = leakage_audit(train["text"], train["label"], test["text"], test["label"], seed, features)
    return {
        "feature_set": features.name,
        "feature_model_accuracy": feature_acc,
        "encoder_accuracy": encoder_acc,
        "features_reach_encoder": bool(feature_acc >= encoder_acc - 0.02),
        "eta_squared": eta_squared(rows[target].to_numpy(), rows["label"].to_numpy()),
        "labels_from_prompt_features": from_features,
    }
