"""The chat quality probe and ``argonne-kit chat``: prompts, chat EOS, greedy replies that stop at
``<|im_end|>``, ``probe.jsonl`` rows; a tiny model taught one reply by the SFT objective answers it."""

from __future__ import annotations

import io
import json

import pytest
import torch

from argonne_kit.cli import main
from argonne_kit.errors import CheckpointError, DataError
from argonne_kit.probe import (
    DEFAULT_PROMPTS,
    ChatProbe,
    chat_eos_token_id,
    generate_reply,
    load_prompts,
    render_prompt,
)
from argonne_kit.recipe.sections import EvalConfig
from argonne_plugins.objectives.sft import SFTConfig, SFTObjective

QUESTION, ANSWER = "hi", "hello there"


@pytest.fixture(scope="module")
def tokenizer():
    from argonne_kit.data.embedded import train_bpe_tokenizer

    texts = [
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>\n",
        "what is the capital of France? say hello in a friendly way",
    ] * 10
    return train_bpe_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="module")
def taught_model_dir(tokenizer, tmp_path_factory):
    """A tiny argonne2 model SFT-trained (this package's objective) to answer QUESTION with ANSWER,
    saved with its tokenizer as a Hugging Face directory."""
    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM

    torch.manual_seed(0)
    model = ArgonneForCausalLM(
        ArgonneConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=64,
        )
    )
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    prefix = render_prompt(tokenizer, messages[:1])
    ids = tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]
    labels = [-100] * len(prefix) + ids[len(prefix) :]
    batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}
    objective = SFTObjective(SFTConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):  # ~12 steps reach the threshold
        loss = objective(model, batch).loss_sum / objective.units(batch)
        if loss.item() < 0.02:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02
    out = tmp_path_factory.mktemp("chat_model")
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_chat_eos_is_im_end_not_the_document_eos(tokenizer):
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.convert_ids_to_tokens(chat_eos_token_id(tokenizer)) == "<|im_end|>"


def test_prompts_from_text_and_jsonl_files(tmp_path):
    assert [c[0]["content"] for c in load_prompts(None)] == list(DEFAULT_PROMPTS)
    (tmp_path / "p.txt").write_text("# comment\nFirst?\n\n  Second?  \n")
    assert load_prompts("p.txt", tmp_path) == [
        [{"role": "user", "content": "First?"}],
        [{"role": "user", "content": "Second?"}],
    ]
    rows = [
        {"prompt": "A?"},
        {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "B?"},
                {"role": "assistant", "content": "reference answer"},
            ]
        },
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    conversations = load_prompts(tmp_path / "p.jsonl")
    assert conversations == [
        [{"role": "user", "content": "A?"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "B?"}],
    ]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"question": "x"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_prompts(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="cannot read"):
        load_prompts(tmp_path / "missing.txt")


class ScriptedModel(torch.nn.Module):
    """``generate`` appends a fixed continuation: checks the stop/truncation logic exactly."""

    def __init__(self, continuation: list[int]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.continuation = continuation
        self.kwargs = None

    def generate(self, ids, **kwargs):
        self.kwargs = kwargs
        tail = torch.tensor([self.continuation[: kwargs["max_new_tokens"]]])
        return torch.cat([ids, tail], dim=1)


def test_reply_is_cut_at_the_chat_eos(tokenizer):
    eos = chat_eos_token_id(tokenizer)
    hello = tokenizer.encode(ANSWER)
    model = ScriptedModel([*hello, eos, *tokenizer.encode(" junk")])
    reply = generate_reply(
        model, tokenizer, [{"role": "user", "content": QUESTION}], max_new_tokens=20, eos_token_id=eos
    )
    assert reply == {"answer": ANSWER, "new_tokens": len(hello), "stopped": True}
    assert model.kwargs["eos_token_id"] == eos and model.kwargs["do_sample"] is False
    short = generate_reply(
        model, tokenizer, [{"role": "user", "content": QUESTION}], max_new_tokens=2, eos_token_id=eos
    )
    assert short["stopped"] is False and short["new_tokens"] == 2


def test_probe_writes_greedy_answers_to_the_run_dir(taught_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(taught_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(taught_model_dir)
    (tmp_path / "prompts.txt").write_text(f"{QUESTION}\nsay hello\n")
    probe = ChatProbe.from_config(
        EvalConfig(probe=True, probe_prompts="prompts.txt", probe_max_new_tokens=12), base_dir=tmp_path
    )
    model.train()
    probe.run(model, tokenizer, tmp_path / "run", step=0, label="before")
    probe.run(model, tokenizer, tmp_path / "run", step=5, label="after")
    assert model.training  # restored
    rows = [json.loads(line) for line in (tmp_path / "run" / "probe.jsonl").read_text().splitlines()]
    assert [(r["step"], r["label"], r["prompt"]) for r in rows] == [
        (0, "before", QUESTION),
        (0, "before", "say hello"),
        (5, "after", QUESTION),
        (5, "after", "say hello"),
    ]
    assert rows[0]["answer"] == ANSWER and rows[0]["stopped"] is True
    assert rows[0] == {**rows[2], "step": 0, "label": "before"}  # greedy: identical answers
    assert all(r["new_tokens"] <= 12 for r in rows)


def test_chat_cli_one_shot_and_interactive(taught_model_dir, capsys, monkeypatch):
    assert main(["chat", str(taught_model_dir), "--prompt", QUESTION, "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out.strip() == ANSWER
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{QUESTION}\n/reset\n\n{QUESTION}\n/exit\nignored\n"))
    assert main(["chat", str(taught_model_dir), "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out.splitlines() == [ANSWER, ANSWER]


def test_chat_cli_refuses_a_directory_without_a_model(tmp_path, capsys):
    assert main(["chat", str(tmp_path)]) == 2
    assert "not a model directory" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        from argonne_kit.model_source import resolve_model_source

        resolve_model_source(str(tmp_path / "nothing"))
