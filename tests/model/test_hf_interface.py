"""What transformers users rely on: the backbone under ``model.``, the sequence-classification
head, ``attn_implementation`` choosing the kernel, ``output_attentions``, ``return_dict=False``
and refused unknown arguments — for both families."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from argonne_kit.contracts.attention import AttentionUnsupported
from argonne_kit.model import ArgonneForSequenceClassification, ArgonneModel, ArgonneV1Model

IDS = torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(8))


@pytest.fixture(params=["argonne2", "argonne1"])
def saved(request, make_model, make_v1_model, tmp_path):
    """(model, directory it was saved to) for each family."""
    model = (
        make_model(local_attention_window=3, pad_token_id=0)
        if request.param == "argonne2"
        else make_v1_model(pad_token_id=0)
    )
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_backbone_is_the_base_model_and_feeds_the_head(saved):
    model, directory = saved
    assert model.base_model_prefix == "model" and model.base_model is model.model
    with torch.no_grad():
        hidden = model.base_model(IDS).last_hidden_state  # what TRL reads
        torch.testing.assert_close(model.logits_from_hidden(hidden), model(IDS).logits, rtol=0, atol=0)
        backbone = AutoModel.from_pretrained(directory).eval()
        assert isinstance(backbone, (ArgonneModel, ArgonneV1Model))
        torch.testing.assert_close(backbone(IDS).last_hidden_state, hidden, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("requested", "kernel"),
    [("eager", "math"), ("sdpa", "sdpa"), ("flex_attention", "flex"), ("flash_attention_2", "flash2")],
)
def test_attn_implementation_selects_the_kernel_and_is_reported(saved, requested, kernel):
    model, directory = saved
    loaded = AutoModelForCausalLM.from_pretrained(directory, attn_implementation=requested).eval()
    assert loaded.config.attn_backend == kernel and loaded.config._attn_implementation == requested
    if kernel == "flash2":  # CUDA-only: the model names the refusal instead of running another kernel
        with pytest.raises(AttentionUnsupported, match="flash2"):
            loaded(IDS)
        return
    assert {name for name, _ in loaded.attention_plan(training=False)} == {kernel}
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, model(IDS).logits, rtol=1e-5, atol=1e-5)
    loaded.set_attn_implementation("eager")
    assert loaded.config._attn_implementation == "eager"
    assert {name for name, _ in loaded.attention_plan(training=False)} == {"math"}


def test_auto_reports_the_kernel_it_runs(saved):
    model, _ = saved
    assert model.config.attn_backend == "auto"
    assert model.config._attn_implementation == "sdpa"  # on a CPU machine
    assert {name for name, _ in model.attention_plan(training=False)} == {"sdpa"}


def test_unknown_attn_implementation_is_refused(saved):
    _, directory = saved
    with pytest.raises(ValueError, match="attn_implementation='paged_magic' is not supported"):
        AutoModelForCausalLM.from_pretrained(directory, attn_implementation="paged_magic")
    model, _ = saved
    with pytest.raises(TypeError, match="one name for the whole model"):  # transformers' per-sub-config form
        model.set_attn_implementation({"": "sdpa"})


def test_output_attentions_returns_the_weights_of_the_math_kernel(saved):
    model, directory = saved
    eager = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        out = eager(IDS, output_attentions=True)
        torch.testing.assert_close(out.logits, eager(IDS).logits, rtol=0, atol=0)
    layers = model.config.num_hidden_layers
    assert len(out.attentions) == layers
    weights = out.attentions[-1]
    assert weights.shape == (2, model.config.num_attention_heads, 10, 10)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.all(weights.triu(1) == 0)  # causal
    if model.config.model_type == "argonne2":  # layer 1 has window 3
        assert torch.all(out.attentions[1].tril(-4) == 0) and torch.any(out.attentions[0].tril(-4) > 0)
    with pytest.raises(ValueError, match="attn_implementation='eager'.*runs \\['sdpa'\\]"):
        model(IDS, output_attentions=True)


def test_return_dict_false_returns_a_tuple(saved):
    model, _ = saved
    with torch.no_grad():
        logits = model(IDS).logits
        plain = model(IDS, return_dict=False)
        with_loss = model(IDS, labels=IDS, return_dict=False)
        base = model.model(IDS, return_dict=False)
    assert isinstance(plain, tuple) and torch.equal(plain[0], logits)
    assert with_loss[0].dim() == 0 and torch.equal(with_loss[1], logits)
    assert isinstance(base, tuple) and base[0].shape == (2, 10, model.config.hidden_size)


def test_unknown_keyword_arguments_are_refused(saved):
    model, _ = saved
    with pytest.raises(TypeError, match="token_type_ids"):
        model(IDS, token_type_ids=torch.zeros_like(IDS))
    with pytest.raises(TypeError, match="num_items_in_batch"):
        model(IDS, labels=IDS, num_items_in_batch=7)


def test_sequence_classification_reads_the_last_real_token(saved):
    model, directory = saved
    classifier = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=3).eval()
    if model.config.model_type == "argonne2":
        assert isinstance(classifier, ArgonneForSequenceClassification)
    right = IDS.clone()
    right[1, 6:] = 0  # row 1: 6 tokens, right padded
    with torch.no_grad():
        hidden = model.base_model(IDS).last_hidden_state
        scores = classifier(right, attention_mask=(right != 0).long()).logits
        expected_first = classifier.score(hidden[0, -1])
        short = classifier.score(model.base_model(IDS[1:, :6]).last_hidden_state[0, -1])
        out = classifier(right, attention_mask=(right != 0).long(), labels=torch.tensor([0, 2]))
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores[0], expected_first, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores[1], short, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(scores, torch.tensor([0, 2])))
