"""Models described, not only named (thinkcount/data/models.py): a description parsed from the name with the
shipped registry, extended by a user's file, so a name never trained on is read by what it shares."""
import pytest

from thinkcount import UserError
from thinkcount.data import models
from thinkcount.data.features import model_text
from thinkcount.data.models import describe


@pytest.mark.parametrize("name, text", [
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama, 0-10B, distilled from deepseek-r1, thinking default"),
    ("qwen/qwen3-235b-a22b", "qwen3, 200B+, distilled from none, thinking default"),  # 235b, not the a22b
    ("gpt-oss-20b (low effort)", "gpt-oss, 10-40B, distilled from none, thinking low"),
    ("qwen3-30b-a3b-think", "qwen3, 10-40B, distilled from none, thinking on"),
    ("deepseek/deepseek-r1", "deepseek-r1, 200B+, distilled from none, thinking default"),  # size from the registry
    ("magistral-medium-2506-thinking", "mistral, unknown size, distilled from none, thinking on"),
    ("my-own-model", "unknown model"), (None, "unknown model"), ("", "unknown model"),
])
def test_a_name_is_described_by_family_size_teacher_and_thinking_mode(name, text):
    assert describe(name).text() == text


def test_the_model_aware_input_reads_the_description_not_the_name():
    assert model_text("Why?", "Qwen/Qwen3-8B") == "[qwen3, 0-10B, distilled from none, thinking default] Why?"
    assert model_text("Why?", float("nan")) == "[unknown model] Why?"  # pandas' missing model


def test_a_user_registry_is_read_first_and_a_bad_one_is_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("families:\n  house: '^acme-'\nmodels:\n  Acme-Reasoner: {size: 70}\n")
    monkeypatch.setenv(models.REGISTRY_VARIABLE, str(tmp_path / "mine.yaml"))
    assert describe("acme-reasoner").text() == "house, 40-200B, distilled from none, thinking default"
    assert describe("qwen3-8b").family == "qwen3"  # the shipped rules still apply
    (tmp_path / "bad.yaml").write_text("families: [unclosed\n")
    monkeypatch.setenv(models.REGISTRY_VARIABLE, str(tmp_path / "bad.yaml"))
    with pytest.raises(UserError, match="the model registry cannot be read"):
        describe("qwen3-8b")
