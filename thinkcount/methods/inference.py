"""Batched prediction with dynamic padding, and turning raw outputs into complexity scores."""
import numpy as np
import torch
from tqdm.auto import tqdm


def best_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def length_batches(texts, batch_size):
    """Indices of texts in batches of similar length, so that batches pad little."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]


def predict_raw(model, tokenizer, texts, max_length, batch_size=64, progress=False, pooled=False):
    """Raw model outputs for texts, shape (n, n_outputs), in batches of similar length. model: anything with
    `n_outputs` and `logits(input_ids, attention_mask)` on arrays (a ComplexityModel, or serve's OnnxModel);
    with pooled=True a ComplexityModel's pooled encoder states (n, hidden)."""
    run = model.pooled_states if pooled else model.logits
    width = model.encoder.config.hidden_size if pooled else model.n_outputs
    outputs = np.zeros((len(texts), width), dtype=np.float32)
    for idx in tqdm(length_batches(texts, batch_size), desc="predict", disable=not progress, unit="batch"):
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                          return_tensors="np", return_token_type_ids=False)
        outputs[idx] = run(batch["input_ids"], batch["attention_mask"])
    return outputs


def softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def interpret(raw, config):
    """Turn raw outputs into per-prompt {score, expected_counts, ...} using the label configuration.

    score is the one complexity number every method is ranked by; expected_counts is in units of
    the method's target (keyword counts, or "Wait" counts for the wait methods)."""
    task, target = config.task, config.target
    if task == "classification":
        # Ranked by E[log1p target]: a top bin's mean is made of prompt-independent "Wait" loops, so
        # E[target] would rank by the probability of the top bin alone. E[target] is kept for MAE.
        probs = softmax(raw)
        stats = [s[target] or {"mean": 0.0, "log1p_mean": 0.0} for s in config.label_stats]
        score = probs @ np.array([s["log1p_mean"] for s in stats])
        expected = probs @ np.array([s["mean"] for s in stats])
        return {"score": score, "expected_counts": expected, "probs": probs, "label": probs.argmax(1)}
    if task == "ranking":
        # Scores only order prompts; an isotonic fit on the train rows maps them to counts.
        score = raw[:, 0]
        cal = config.calibration
        return {"score": score, "expected_counts": np.interp(score, cal["score"], cal["counts"]), "value": score}
    value = raw[:, 0] * config.scale["std"] + config.scale["mean"]
    if config.label_stats is not None:  # regression on a bin index: read the counts off the bins' means
        means = np.array([s[target]["mean"] for s in config.label_stats])
        expected = np.interp(value, np.arange(len(means)), means)
        return {"score": value, "expected_counts": expected, "value": value}
    return {"score": value, "expected_counts": np.clip(value, 1, None), "value": value}


def prediction_records(raw, config):
    """One dict per prompt: score, expected counts and, for classifiers, label, its name and probabilities."""
    out = interpret(raw, config)
    records = []
    for i in range(len(raw)):
        record = {"score": float(out["score"][i]), "expected_counts": float(out["expected_counts"][i])}
        if "probs" in out:
            label = int(out["label"][i])
            record.update(label=label, label_name=config.label_names[label],
                          probs=[round(float(p), 6) for p in out["probs"][i]])
        records.append(record)
    return records
