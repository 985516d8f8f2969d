"""TRL trains the exported model: SFTTrainer (plain text and conversations) and DPOTrainer (with
and without a reference model) run 2 steps, and TRL's loss and log-probs equal the kit's
objectives on the same batch (its fused head applies ``final_logit_softcapping`` too)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from hf_export import export_tiny_chat_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from argonne_kit.model import ArgonneForCausalLM
from argonne_plugins.objectives.dpo import sequence_scores
from argonne_plugins.objectives.sft import SFTConfig as KitSFTConfig
from argonne_plugins.objectives.sft import SFTObjective

pytestmark = pytest.mark.slow  # each trainer builds datasets and an accelerator (~seconds)

TEXT = Dataset.from_list([{"text": "the quick brown fox jumps over the lazy dog"}] * 4)
CONVERSATIONS = Dataset.from_list(
    [{"messages": [{"role": "user", "content": "what is two plus two?"}, {"role": "assistant", "content": "four"}]}] * 4
)
PREFERENCES = Dataset.from_list(
    [{"prompt": "what is two plus two?", "chosen": " four", "rejected": " hello world"}] * 4
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_tiny_chat_model(tmp_path_factory.mktemp("run"))


def _args(tmp_path) -> dict:
    return dict(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        learning_rate=1e-2,
        max_length=32,
        dataloader_num_workers=0,
    )


def _first_batch(trainer) -> dict:
    return trainer.data_collator([trainer.train_dataset[i] for i in range(2)])


def _trained(trainer) -> bool:
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert trainer.state.global_step == 2
    return any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


@pytest.mark.parametrize("dataset", [TEXT, CONVERSATIONS], ids=["text", "conversational"])
def test_sft_trainer_trains_and_its_loss_is_the_sft_objective(exported, tmp_path, dataset):
    tokenizer = AutoTokenizer.from_pretrained(exported)
    trainer = SFTTrainer(
        model=str(exported), args=SFTConfig(**_args(tmp_path)), train_dataset=dataset, processing_class=tokenizer
    )
    assert isinstance(trainer.model, ArgonneForCausalLM)
    batch = _first_batch(trainer)
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(batch))
        ours = SFTObjective(KitSFTConfig())
        kit_batch = {k: batch[k] for k in ("input_ids", "labels", "attention_mask") if k in batch}
        kit_loss = ours(trainer.model, kit_batch).loss_sum / ours.units(kit_batch)
    torch.testing.assert_close(trl_loss, kit_loss, rtol=1e-5, atol=1e-6)
    assert _trained(trainer)


@pytest.mark.parametrize("with_reference", [False, True], ids=["ref_model=None", "ref_model"])
def test_dpo_trainer_trains_and_its_log_probs_are_the_dpo_objective(exported, tmp_path, with_reference):
    tokenizer = AutoTokenizer.from_pretrained(exported)
    reference = AutoModelForCausalLM.from_pretrained(exported) if with_reference else None
    trainer = DPOTrainer(
        model=str(exported),
        ref_model=reference,
        args=DPOConfig(**_args(tmp_path)),
        train_dataset=PREFERENCES,
        processing_class=tokenizer,
    )
    batch = _first_batch(trainer)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
    with torch.no_grad():
        trl_logps = trainer.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True
        ).log_probs.sum(1)
        _, kit_logps, _ = sequence_scores(trainer.model, inputs, "sum")
    assert trainer.model.config.final_logit_softcapping == 15.0
    torch.testing.assert_close(trl_logps, kit_logps, rtol=1e-5, atol=1e-5)
    assert _trained(trainer)
