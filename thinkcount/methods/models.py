"""Encoders from the registry, one model class for every method, and its freezing rules.

The model is an encoder (BERT, RoBERTa, DeBERTa-v2/v3, ...) whose last hidden states are
mean-pooled over the attention mask, then a head. Pooling this way, instead of each family's
own pooler, gives every architecture the same code path; token type ids are never used since
every input is a single segment.
"""
import importlib.util
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.modeling_outputs import SequenceClassifierOutput

from thinkcount import UserError
from thinkcount.methods.modelfolder import loaded

PACKAGE_PREFIX = "package:"
HEAD_FILE, MODEL_CONFIG = "head.pt", "thinkcount_model.json"


def resolve_source(name, source):
    """Turn a registry source into something from_pretrained accepts, or stop with one sentence."""
    if source.startswith(PACKAGE_PREFIX):
        package, _, sub = source[len(PACKAGE_PREFIX):].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"encoder '{name}' needs the Python package {package}; install requirements.txt.")
        path = Path(list(spec.submodule_search_locations)[0]) / sub
        if not path.is_dir():
            raise UserError(f"encoder '{name}': {path} does not exist.")
        return str(path)
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    try:
        AutoConfig.from_pretrained(source, local_files_only=True)
        return source  # in the local Hugging Face cache
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise UserError(
            f"encoder '{name}' ({source}) is not in the local Hugging Face cache and the hub cannot be reached; "
            f"download it where there is network, or set encoders.{name}.source in params.yaml to a local "
            "folder holding its config, weights and tokenizer.")
    return source


def hub_reachable(timeout=3.0):
    """A quick TCP check, so that an offline machine fails at once instead of after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def encoder_layers(encoder):
    """The encoder's transformer blocks, bottom to top (BERT, RoBERTa and DeBERTa keep them alike)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise UserError(f"don't know where the layers of {type(encoder).__name__} are; "
                        "layer freezing supports BERT, RoBERTa and DeBERTa-style encoders.")
    return layers


class ComplexityModel(nn.Module):
    """Encoder, masked mean pooling, and a linear or MLP head with `n_outputs` outputs."""

    def __init__(self, encoder, n_outputs, head="linear", dropout=0.1):
        super().__init__()
        self.encoder = encoder
        self.n_outputs, self.head_kind = n_outputs, head
        hidden = encoder.config.hidden_size
        if head == "mlp":
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 512), nn.GELU(),
                                      nn.Dropout(0.2), nn.Linear(512, n_outputs))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def pooled(self, input_ids, attention_mask):
        """The encoder's last hidden states, averaged over the real (unmasked) tokens."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, input_ids, attention_mask):
        return SequenceClassifierOutput(logits=self.head(self.pooled(input_ids, attention_mask)))

    @torch.inference_mode()
    def logits(self, input_ids, attention_mask):
        """Raw outputs for a tokenized batch of arrays, in eval mode on the model's device: the interface
        serve's OnnxModel shares, so one prediction loop runs both."""
        return self.eval()(*self.tensors(input_ids, attention_mask)).logits.float().cpu().numpy()

    @torch.inference_mode()
    def pooled_states(self, input_ids, attention_mask):
        """The pooled encoder states of a tokenized batch of arrays (the probe baseline's features)."""
        return self.eval().pooled(*self.tensors(input_ids, attention_mask)).float().cpu().numpy()

    def tensors(self, *arrays):
        device = next(self.parameters()).device
        return [torch.from_numpy(a).to(device) for a in arrays]

    def freeze(self, trainable_layers):
        """None trains everything; N freezes the encoder except its top N blocks (0: head only)."""
        for p in self.encoder.parameters():
            p.requires_grad = trainable_layers is None
        if trainable_layers:
            for layer in list(encoder_layers(self.encoder))[-trainable_layers:]:
                for p in layer.parameters():
                    p.requires_grad = True

    def save(self, folder, tokenizer):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / "encoder")
        tokenizer.save_pretrained(folder / "encoder")
        torch.save(self.head.state_dict(), folder / HEAD_FILE)
        (folder / MODEL_CONFIG).write_text(json.dumps({"n_outputs": self.n_outputs, "head": self.head_kind}))

    @classmethod
    def load(cls, folder):
        """The model and tokenizer saved in folder; a file that cannot be read is named in one sentence."""
        folder = Path(folder)
        if not (folder / MODEL_CONFIG).is_file():
            raise UserError(f"{folder}: not a trained thinkcount model (no {MODEL_CONFIG}).")
        meta = loaded(folder / MODEL_CONFIG, lambda p: json.loads(p.read_text(encoding="utf-8")))
        encoder = loaded(folder / "encoder", AutoModel.from_pretrained)
        model = loaded(folder / MODEL_CONFIG, lambda p: cls(encoder, meta["n_outputs"], meta["head"]))
        loaded(folder / HEAD_FILE, lambda p: model.head.load_state_dict(
            torch.load(p, map_location="cpu", weights_only=True)))
        return model.eval(), loaded(folder / "encoder", AutoTokenizer.from_pretrained)


def build_model(source, n_outputs, head="linear", extra_tokens=(), seed=0, num_layers=None):
    """A fresh model on a pretrained encoder; extra tokens are added as special tokens.

    num_layers keeps only the encoder's bottom layers (a fast encoder for the CI profile)."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    kwargs = {"num_hidden_layers": num_layers} if num_layers else {}
    encoder = AutoModel.from_pretrained(source, **kwargs)
    if extra_tokens:
        tokenizer.add_tokens(list(extra_tokens), special_tokens=True)
        encoder.resize_token_embeddings(len(tokenizer))
    return ComplexityModel(encoder, n_outputs, head), tokenizer

