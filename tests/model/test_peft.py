"""PEFT LoRA on the Argonne models: adapters on the attention projections train, the base stays
frozen, and a merged model and a reloaded adapter give the adapted logits."""

from __future__ import annotations

import torch
from model_fixtures import VOCAB
from peft import LoraConfig, PeftModel, get_peft_model

from argonne_kit.model import ArgonneForCausalLM

IDS = torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))


def test_lora_trains_merges_and_reloads(make_model, tmp_path):
    model = make_model(local_attention_window=3)
    model.save_pretrained(tmp_path / "base")
    with torch.no_grad():
        base = model(IDS).logits
    peft = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    frozen = {k: v.clone() for k, v in peft.named_parameters() if not v.requires_grad}
    trainable = [p for p in peft.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in peft.named_parameters() if p.requires_grad)
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    peft.train()
    loss = peft(IDS, labels=IDS).loss
    loss.backward()
    optimizer.step()
    peft.eval()
    assert all(torch.equal(v, dict(peft.named_parameters())[k]) for k, v in frozen.items())
    with torch.no_grad():
        adapted = peft(IDS).logits
        assert not torch.allclose(adapted, base, atol=1e-3)  # the adapters are live
        peft.save_pretrained(tmp_path / "adapter")
        reloaded = PeftModel.from_pretrained(
            ArgonneForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
        ).eval()
        torch.testing.assert_close(reloaded(IDS).logits, adapted, rtol=1e-5, atol=1e-5)
        merged = peft.merge_and_unload()
        torch.testing.assert_close(merged(IDS).logits, adapted, rtol=1e-5, atol=1e-5)
