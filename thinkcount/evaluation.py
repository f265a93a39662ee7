"""Evaluation on the shared test split: each method's native metrics, and one yardstick for all.

The yardstick ranks test prompts by each method's complexity score and compares that ranking
with the true counts (Kendall tau-b with a bootstrap interval, Spearman), plus the MAE of the
implied counts and ROC-AUC for flagging the top 10% of counts. It is reported on the whole test
split and on its clean part, and for the generator's oracle as the ceiling.
"""
import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, mean_absolute_error,
                             mean_squared_error, roc_auc_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from thinkcount.features import feature_matrix

TARGETS = ("counts", "wait_counts")


def kendall(x, y):
    tau = kendalltau(x, y).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def bootstrap_tau(score, target, n_boot, seed):
    """95% percentile interval of Kendall tau-b over bootstrap resamples of the prompts."""
    rng = np.random.default_rng(seed)
    taus = [kendall(score[idx], target[idx]) for idx in (rng.integers(0, len(score), len(score))
                                                         for _ in range(n_boot))]
    return [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))]


def yardstick(score, expected, truth, target, n_boot=1000, seed=0, top_share=0.1):
    """The comparison every method gets. truth: frame with counts and wait_counts, aligned with score."""
    score, expected = np.asarray(score, float), np.asarray(expected, float)
    y = truth[target].to_numpy(dtype=float)
    other = [t for t in TARGETS if t != target][0]
    top = y >= np.quantile(y, 1 - top_share)
    return {
        "n": len(y),
        "kendall_tau": kendall(score, y),
        "kendall_tau_ci95": bootstrap_tau(score, y, n_boot, seed),
        "spearman": float(np.nan_to_num(spearmanr(score, y).statistic)),
        f"kendall_tau_{other}": kendall(score, truth[other].to_numpy(dtype=float)),
        "mae_counts": float(mean_absolute_error(y, expected)),
        "auc_top10": float(roc_auc_score(top, score)) if 0 < top.sum() < len(top) else None,
    }


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


def leakage_audit(train_texts, train_labels, test_texts, test_labels, seed):
    """How well prompt-only features (no counts, no encoder) predict the labels."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(feature_matrix(train_texts), train_labels)
    return float(accuracy_score(test_labels, model.predict(feature_matrix(test_texts))))
