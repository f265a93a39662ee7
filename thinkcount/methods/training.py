"""One training entry point for every method, configured by the method's params."""
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.isotonic import IsotonicRegression
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments

from thinkcount import UserError
from thinkcount.data.features import prepare_text
from thinkcount.data.records import within_budget
from thinkcount.methods.inference import predict_raw
from thinkcount.methods.labels import class_weights
from thinkcount.methods.launch import check_precision, precision_flags, resolve_device, running_processes
from thinkcount.methods.models import build_model, resolve_source


@dataclass(frozen=True)
class RunSettings:
    """The values one training run uses."""
    model: str  # encoder name in params' `encoders`
    source: str  # where its weights are (hub id, folder, or package:NAME/PATH)
    batch_size: int  # per process, after batch scaling
    learning_rate: float
    max_length: int  # tokens a prompt is cut to
    epochs: float
    grad_accum: int
    max_train_rows: int
    num_layers: Optional[int]  # encoder layers kept; None keeps them all


def method_settings(params, name):
    """Encoder hints, then train defaults, then the method's overrides: the values one run uses."""
    overrides = params.methods[name].overrides.model_dump(exclude_none=True)
    model = overrides.pop("model", params.model)
    encoder, train = params.encoders[model], params.train
    settings = {
        "model": model, "source": encoder.source, "batch_size": encoder.batch_size,
        "learning_rate": encoder.learning_rate, "max_length": encoder.max_length, "epochs": train.epochs,
        "grad_accum": 1, "max_train_rows": train.max_train_rows, "num_layers": encoder.num_layers,
    }
    return RunSettings(**{**settings, **overrides})


def make_loss(task, loss, weights=None):
    """The method's loss as Trainer's compute_loss_func: (outputs, labels) -> scalar, a per-batch mean."""
    def mse(outputs, labels, num_items_in_batch=None):
        return F.mse_loss(outputs.logits.squeeze(-1).float(), labels.float())

    def cross_entropy(outputs, labels, num_items_in_batch=None):
        w = None if weights is None else weights.to(outputs.logits.device)
        return F.cross_entropy(outputs.logits.float(), labels.long(), weight=w)

    def pairwise(outputs, labels, num_items_in_batch=None):
        # RankNet: for every pair with y_i > y_j, penalise softplus(-(s_i - s_j)).
        s = outputs.logits.squeeze(-1).float()
        diff = s.unsqueeze(1) - s.unsqueeze(0)
        better = (labels.unsqueeze(1) > labels.unsqueeze(0)).float()
        if better.sum() == 0:
            return (s * 0).sum()
        return (F.softplus(-diff) * better).sum() / better.sum()

    if task == "classification":
        return cross_entropy
    return pairwise if loss == "pairwise" else mse


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts, labels, max_length):
        self.encodings = tokenizer(list(texts), truncation=True, max_length=max_length,
                                   return_token_type_ids=False)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.encodings["input_ids"][i], "attention_mask": self.encodings["attention_mask"][i],
                "labels": self.labels[i]}


class LiveLogger(TrainerCallback):
    """Logs Trainer's numbers to dvclive at the optimizer step (counted on from earlier phases: `offset`);
    unlike dvclive's own callback it never ends the Live run."""

    def __init__(self, live, offset=0):
        self.live, self.offset = live, offset

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        self.live.step = self.offset + state.global_step
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and key.removeprefix("eval_") in ("loss", "learning_rate", "grad_norm"):
                self.live.log_metric(key.replace("eval_", "eval/") if key.startswith("eval_") else f"train/{key}",
                                     value)


def target_scale(labels, task):
    """Regression labels are standardised for training; the scale is saved for inference."""
    return {"mean": float(labels.mean()), "std": float(labels.std()) or 1.0} if task == "regression" else None


def training_targets(labels, task, scale):
    if task == "classification":
        return labels.astype(int)
    if task == "regression":
        return ((labels - scale["mean"]) / scale["std"]).astype(np.float32)
    return labels.astype(np.float32)


def train_method(params, name, rows, label_config, out_dir, live=None, progress=True):
    """Train one method on `rows` (a frame with text, split, label); save the model to out_dir.

    Under torchrun each rank trains on its shard of every batch; all ranks return, rank 0 writes.
    Returns (model, tokenizer, settings, history, the LabelConfig completed with what inference needs)."""
    method, train_params = params.methods[name], params.train
    settings = scaled_for_processes(method_settings(params, name), train_params.batch_scaling)
    seed, task = train_params.seed, method.task
    train, val = train_val_rows(rows, settings.max_train_rows, train_params.max_val_rows, name)
    markers = label_config.markers
    n_outputs = label_config.n_labels if task == "classification" else 1
    source = resolve_source(settings.model, settings.source)
    model, tokenizer = build_model(source, n_outputs, method.head,
                                   markers.tokens if markers else (), seed, settings.num_layers)
    device = resolve_device(train_params)
    check_precision(train_params.precision, device, model.encoder.config.model_type)
    scale = target_scale(train["label"].to_numpy(), task)
    y_train = training_targets(train["label"].to_numpy(), task, scale)
    weights = None
    if method.loss == "weighted_ce":
        weights = torch.tensor(class_weights(y_train, n_outputs), dtype=torch.float32)
    datasets = (EncodedDataset(tokenizer, [prepare_text(t, markers) for t in train["text"]], y_train,
                               settings.max_length),
                EncodedDataset(tokenizer, [prepare_text(t, markers) for t in val["text"]],
                               training_targets(val["label"].to_numpy(), task, scale), settings.max_length))
    checkpoints = Path(out_dir) / "checkpoints"
    history = []
    for phase, (trainable, lr, epochs) in enumerate(training_phases(method, settings)):
        model.freeze(trainable)
        trainer = make_trainer(model, tokenizer, datasets, make_loss(task, method.loss, weights), settings,
                               train_params, device, task, (lr, epochs), checkpoints, progress)
        if live is not None:
            trainer.add_callback(LiveLogger(live, offset=sum(h["steps"] for h in history)))
        out = trainer.train()
        history.append({"phase": phase, "train_rows": len(train), "trainable_layers": trainable,
                        "learning_rate": lr, "epochs": epochs,
                        "best_eval_loss": trainer.state.best_metric, "steps": trainer.state.global_step,
                        "processes": trainer.args.world_size, "batch_size_per_process": settings.batch_size,
                        "train_batches_per_process": len(trainer.get_train_dataloader()),
                        "train_samples_per_second": out.metrics["train_samples_per_second"]})
    # Every rank has loaded the best checkpoint before rank 0 alone removes them.
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        shutil.rmtree(checkpoints, ignore_errors=True)
    model.freeze(None)
    calibration = (calibrate_scores(model, tokenizer, train, markers, settings.max_length,
                                    train_params.eval_batch_size) if task == "ranking" else None)
    trained = label_config.trained(max_length=settings.max_length, scale=scale, calibration=calibration,
                                   class_weights=None if weights is None else weights.tolist())
    return model, tokenizer, settings, history, trained


def scaled_for_processes(settings, batch_scaling):
    """With N processes, `fixed_global` keeps the global batch (and so results comparable with one
    process) by giving each process batch_size / N rows; `linear_lr` gives each process batch_size
    rows and multiplies the learning rate by N (the linear scaling rule)."""
    n = running_processes()
    if n == 1:
        return settings
    if batch_scaling == "linear_lr":
        return replace(settings, learning_rate=settings.learning_rate * n)
    if settings.batch_size % n:
        raise UserError(f"train.batch_scaling fixed_global splits batch size {settings.batch_size} over {n} "
                        f"processes, which does not divide it; use a multiple of {n}, or linear_lr.")
    return replace(settings, batch_size=settings.batch_size // n)


def train_val_rows(rows, max_train_rows, max_val_rows, name):
    """The method's train and val rows within their budgets (the split's shared order), val sorted by length."""
    train = within_budget(rows[rows["split"] == "train"], max_train_rows)
    val = within_budget(rows[rows["split"] == "val"], max_val_rows)
    if len(val) == 0:
        raise UserError(f"method {name}: its variant has no val rows.")
    return train, val.iloc[np.argsort(val["text"].str.len().to_numpy(), kind="stable")]  # less eval padding


def training_phases(method, settings):
    """(trainable layers, learning rate, epochs) per phase: one, or head alone first for two_stage."""
    if method.two_stage is None:
        return [(method.trainable_layers, settings.learning_rate, settings.epochs)]
    first = max(settings.epochs * method.two_stage.epoch_fraction, 0.1)
    return [(0, method.two_stage.learning_rate, first),
            (method.trainable_layers, settings.learning_rate, max(settings.epochs - first, 0.1))]


def sampling_strategy(task, batches):
    # A pairwise loss compares the prompts within a batch: batches of similar length would only
    # compare near-identical prompts, so ranking draws random batches.
    return "group_by_length" if batches == "length_grouped" and task != "ranking" else "random"


class RatioWarmupTrainer(Trainer):
    """A Trainer whose warm-up is a share of its optimizer steps. Trainer reads `warmup_steps` of 1 or more as
    a step count, so passing a ratio there would make train.warmup_ratio 1 mean one step."""

    def __init__(self, *args, warmup_ratio, **kwargs):
        super().__init__(*args, **kwargs)
        self.warmup_ratio = warmup_ratio

    def create_scheduler(self, num_training_steps, optimizer=None):
        self.args.warmup_steps = math.ceil(num_training_steps * self.warmup_ratio)
        return super().create_scheduler(num_training_steps, optimizer)


def make_trainer(model, tokenizer, datasets, loss, settings, train_params, device, task, schedule, checkpoints,
                 progress):
    """A Trainer for one phase; schedule is (learning rate, epochs). Several CPU processes talk over gloo."""
    lr, epochs = schedule
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        per_device_eval_batch_size=train_params.eval_batch_size,
        weight_decay=train_params.weight_decay,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, save_only_model=True,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
        logging_strategy="steps", logging_steps=10, report_to="none", seed=train_params.seed,
        data_seed=train_params.seed, disable_tqdm=not progress,
        train_sampling_strategy=sampling_strategy(task, train_params.batches),
        dataloader_pin_memory=torch.cuda.is_available(), label_names=["labels"],
        use_cpu=device == "cpu", ddp_backend="gloo" if device == "cpu" and running_processes() > 1 else None,
        **precision_flags(train_params.precision, device),
    )
    trainer = RatioWarmupTrainer(model=model, args=args, train_dataset=datasets[0], eval_dataset=datasets[1],
                                 data_collator=DataCollatorWithPadding(tokenizer), compute_loss_func=loss,
                                 callbacks=[EarlyStoppingCallback(train_params.early_stopping_patience)],
                                 warmup_ratio=train_params.warmup_ratio)
    trainer.loss_is_scaled_for_ga = False  # our losses are per-batch means
    return trainer


def calibrate_scores(model, tokenizer, train, markers, max_length, batch_size):
    """Isotonic map from ranking scores to counts, fitted on the train rows."""
    texts = [prepare_text(t, markers) for t in train["text"]]
    scores = predict_raw(model, tokenizer, texts, max_length, batch_size)[:, 0]
    iso = IsotonicRegression(out_of_bounds="clip").fit(scores, np.expm1(train["label"].to_numpy()))
    return {"score": iso.X_thresholds_.tolist(), "counts": iso.y_thresholds_.tolist()}

