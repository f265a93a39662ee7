"""Architecture-specific code on tiny BERT, RoBERTa and DeBERTa-v2 encoders built from configs."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import labelled, tiny_params, tiny_rows
from thinkcount import UserError
from thinkcount.data.features import feature_set, prepare_text
from thinkcount.methods.inference import predict_raw, prediction_records
from thinkcount.methods.models import ComplexityModel, build_model, encoder_layers, resolve_source
from thinkcount.methods.training import EncodedDataset, make_loss, make_trainer, method_settings, train_method
from thinkcount.pipeline.config import updated

FAMILIES = ["bert", "roberta", "deberta-v2"]


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", FAMILIES)
def test_freeze_keeps_only_the_top_layers_and_the_head_trainable(tiny_encoders, family):
    model, _ = build_model(tiny_encoders[family], 3, head="mlp")
    layers = encoder_layers(model.encoder)
    assert len(layers) == 4
    model.freeze(2)
    names = trainable_names(model)
    assert any(n.startswith("head.") for n in names)
    top = {f"encoder.encoder.layer.{i}." for i in (2, 3)}
    assert all(n.startswith("head.") or any(n.startswith(t) for t in top) for n in names)
    assert any(n.startswith("encoder.encoder.layer.3.") for n in names)
    model.freeze(0)
    assert all(n.startswith("head.") for n in trainable_names(model))
    model.freeze(None)
    assert len(trainable_names(model)) == len(list(model.parameters()))


def test_mlp_head_has_the_seed_shape(tiny_encoders):
    model, _ = build_model(tiny_encoders["bert"], 10, head="mlp")
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 512), (512, 10)]
    assert any(isinstance(m, torch.nn.GELU) for m in model.head)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in model.head)


@pytest.mark.parametrize("family", FAMILIES)
def test_markers_are_single_special_tokens_with_their_own_embeddings(params, tiny_encoders, family):
    markers = feature_set(params.features, "seed_m08_markers")
    plain, _ = build_model(tiny_encoders[family], 2)
    model, tokenizer = build_model(tiny_encoders[family], 2, extra_tokens=markers.tokens)
    vocab = plain.encoder.get_input_embeddings().num_embeddings
    assert model.encoder.get_input_embeddings().num_embeddings == vocab + 12
    text = prepare_text("Why is the sky blue? How does light scatter?", markers)
    tokens = tokenizer.tokenize(text)
    assert tokens[:4] == ["[SHORT]", "[MULTI_Q]", "[WHY]", "[HOW]"]
    ids = tokenizer.convert_tokens_to_ids(tokens[:4])
    assert all(i >= vocab for i in ids)
    batch = tokenizer([text], return_tensors="pt", return_token_type_ids=False)
    assert model(**batch).logits.shape == (1, 2)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["m04_two_stage", "m07_custom_head", "m08_markers"])
def test_special_methods_train_on_every_family(tmp_path, params, tiny_encoders, family, name):
    p = tiny_params(params, {family: tiny_encoders[family]})
    rows, config = labelled(p, name, tiny_rows())
    model, tokenizer, settings, history, config = train_method(p, name, rows, config, tmp_path, progress=False)
    reference, _ = build_model(tiny_encoders[family], config.n_labels)
    bottom = dict(reference.encoder.encoder.layer[0].named_parameters())
    changed = {n: not torch.equal(v, bottom[n]) for n, v in model.encoder.encoder.layer[0].named_parameters()}
    if name == "m04_two_stage":
        assert [h["trainable_layers"] for h in history] == [0, None]
        assert [h["learning_rate"] for h in history] == [5e-4, settings.learning_rate]
        assert any(changed.values())  # stage 2 unfroze the encoder
    if name == "m07_custom_head":
        assert not any(changed.values())  # bottom layers stay as pretrained
        top = dict(reference.encoder.encoder.layer[3].named_parameters())
        assert any(not torch.equal(v, top[n]) for n, v in model.encoder.encoder.layer[3].named_parameters())
    if name == "m08_markers":
        assert config.markers.name == "seed_m08_markers"
        assert tokenizer.convert_tokens_to_ids("[WHY]") >= tokenizer.vocab_size
    model.save(tmp_path / "saved", tokenizer)
    loaded, loaded_tok = ComplexityModel.load(tmp_path / "saved")
    texts = [prepare_text(t, config.markers) for t in rows["text"][:5]]
    assert np.allclose(predict_raw(model.eval(), tokenizer, texts, 32), predict_raw(loaded, loaded_tok, texts, 32),
                       atol=1e-5)


@pytest.mark.parametrize("name", ["m01_regress", "m05_bin_regress", "m13_rank", "m12_wait_classes"])
def test_every_task_trains_learns_and_predicts_counts(tmp_path, params, tiny_encoders, name):
    p = tiny_params(params, {"bert": tiny_encoders["bert"]}, epochs=6)
    rows, labelled_config = labelled(p, name, tiny_rows(128))
    model, tokenizer, _, _, config = train_method(p, name, rows, labelled_config, tmp_path, progress=False)
    task = p.methods[name].task
    assert labelled_config.max_length is None and config.max_length == 32  # training returns a completed copy
    assert (config.scale is not None, config.calibration is not None) == (task == "regression", task == "ranking")
    val = rows[rows["split"] == "val"]
    records = prediction_records(predict_raw(model, tokenizer, list(val["text"]), 32), config)
    scores = np.array([r["score"] for r in records])
    target = val[p.methods[name].target].to_numpy()
    # The two prompt types differ a lot in counts: any working model separates them.
    assert scores[target > np.median(target)].mean() > scores[target <= np.median(target)].mean()
    assert all(r["expected_counts"] > 0 for r in records)
    if task == "classification":
        assert all(len(r["probs"]) == config.n_labels and abs(sum(r["probs"]) - 1) < 1e-4 for r in records)


def test_weighted_loss_upweights_the_rare_class():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 0, 1])
    wrong_rare = torch.tensor([[2.0, 0.0]] * 4)
    out = type("Out", (), {})
    out.logits = wrong_rare
    plain = make_loss("classification", "ce")(out, labels)
    weighted = make_loss("classification", "weighted_ce", torch.tensor([4 / 6, 2.0]))(out, labels)
    assert weighted > plain  # missing the rare class costs more with weights
    out.logits = logits
    assert make_loss("classification", "ce")(out, labels) < plain


def test_pairwise_loss_prefers_correct_order():
    labels = torch.tensor([0.0, 1.0, 2.0])
    out = type("Out", (), {})
    out.logits = torch.tensor([[0.0], [5.0], [10.0]])
    good = make_loss("ranking", "pairwise")(out, labels)
    out.logits = torch.tensor([[10.0], [5.0], [0.0]])
    bad = make_loss("ranking", "pairwise")(out, labels)
    assert good < 0.01 < 5 < bad


def test_method_settings_apply_overrides(params, tiny_encoders):
    p = tiny_params(params, {"bert": tiny_encoders["bert"], "roberta": tiny_encoders["roberta"]})
    p = updated(p, methods={"m07_custom_head": {**p.methods["m07_custom_head"].model_dump(),
                                                "overrides": {"model": "tiny-roberta", "batch_size": 4, "epochs": 5}}})
    s = method_settings(p, "m07_custom_head")
    assert (s.model, s.batch_size, s.epochs) == ("tiny-roberta", 4, 5)
    assert s.max_length == p.encoders["tiny-roberta"].max_length  # not overridden: the encoder's own
    assert method_settings(p, "m01_regress").model == "tiny-bert"


def test_unreachable_hub_model_stops_with_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="deberta-v3-large.*encoders.deberta-v3-large.source"):
        resolve_source("deberta-v3-large", "microsoft/deberta-v3-large-not-cached")
    with pytest.raises(UserError, match="needs the Python package"):
        resolve_source("x", "package:no_such_package_here/model")


def batches_of(params, size):
    """A run's settings with batches of size rows and no accumulation."""
    return replace(method_settings(params, "m01_regress"), batch_size=size, grad_accum=1)


@pytest.mark.parametrize("task, loss, batches, mixed", [("ranking", "pairwise", "length_grouped", True),
                                                        ("regression", "mse", "random", True),
                                                        ("regression", "mse", "length_grouped", False)])
def test_ranking_batches_mix_prompt_lengths(tmp_path, params, tiny_encoders, task, loss, batches, mixed):
    """A pairwise loss needs prompts of different lengths in one batch; length grouping would give it
    near-identical ones. Half the prompts are 2 tokens, half about 20; batches of 8."""
    model, tokenizer = build_model(tiny_encoders["bert"], 1)
    texts = ["short prompt" if i % 2 else "a much longer prompt " * 5 for i in range(400)]
    data = EncodedDataset(tokenizer, texts, np.zeros(400, dtype=np.float32), 32)
    train = params.train.model_copy(update={"batches": batches})
    trainer = make_trainer(model, tokenizer, (data, data), make_loss(task, loss, None), batches_of(params, 8), train,
                           "cpu", task, (1e-3, 1), tmp_path, False)
    lengths = [set(batch["attention_mask"].sum(1).tolist()) for batch in trainer.get_train_dataloader()]
    share_mixed = np.mean([len(s) > 1 for s in lengths])
    assert share_mixed >= 0.9 if mixed else share_mixed <= 0.25


@pytest.mark.parametrize("ratio, multipliers", [
    (1.0, {0: 0.0, 5: 0.5, 9: 0.9}),              # warm-up over all 10 steps (one step would give 5: 0.556)
    (0.2, {0: 0.0, 1: 0.5, 2: 1.0, 6: 0.5}),      # ceil(10 x 0.2) = 2 warm-up steps, then linear decay to 0
    (0.0, {0: 1.0, 5: 0.5}),
])
def test_warmup_ratio_is_a_share_of_the_optimizer_steps(tmp_path, params, tiny_encoders, ratio, multipliers):
    model, tokenizer = build_model(tiny_encoders["bert"], 1)
    data = EncodedDataset(tokenizer, ["a prompt"] * 8, np.zeros(8, dtype=np.float32), 32)
    train = params.train.model_copy(update={"warmup_ratio": ratio})
    trainer = make_trainer(model, tokenizer, (data, data), make_loss("regression", "mse", None),
                           batches_of(params, 8), train, "cpu", "regression", (1e-3, 1), tmp_path, False)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    schedule = trainer.lr_scheduler.lr_lambdas[0]
    assert {step: round(schedule(step), 6) for step in multipliers} == multipliers
