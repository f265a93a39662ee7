"""A short model card written beside each trained model."""
import json
from pathlib import Path


def without_timing(phase):
    return {k: v for k, v in phase.items() if k != "train_samples_per_second"}


def write_model_card(out_dir, name, method, settings, summary, label_config):
    labels = (list(label_config.label_names) if label_config.label_names
              else f"{label_config.scheme} of {label_config.target}")
    lines = [
        f"# thinkcount model: {name}",
        "",
        "Predicts from a prompt alone how much a reasoning LLM will think (`counts`: reflection keywords + 1).",
        "",
        "## Data",
        f"- variant `{method.variant}`, target `{method.target}`, {summary['train_rows']} train rows",
        f"- labels: {labels}",
        "",
        "## Method and settings",
        f"- task {method.task}, loss {method.loss}, head {method.head}, markers {method.markers or False}, "
        f"trainable layers {'all' if method.trainable_layers is None else method.trainable_layers}",
        f"- encoder `{settings.model}` ({settings.source}), batch {settings.batch_size}, "
        f"lr {settings.learning_rate}, epochs {settings.epochs}, max length {settings.max_length}",
        "",
        "## Training",
        # No timings here: the card is part of the cached model, whose hash must not change on identical retraining.
        f"- phases: `{json.dumps([without_timing(p) for p in summary['phases']])}`",
        f"- evaluation on the shared test split: `metrics/eval/{name}.json` after `dvc repro evaluate@{name}`",
        "",
        "## Use",
        "```python",
        "from thinkcount.serve.predict import Predictor",
        f'Predictor.load("models/{name}").predict(["Explain how vaccines work."])',
        "```",
    ]
    Path(out_dir, "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
