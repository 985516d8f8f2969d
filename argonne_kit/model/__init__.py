"""The Argonne model family (Hugging Face-native) and its recipe sections.

- :class:`ArgonneConfig` / :class:`ArgonneForCausalLM` — ``model_type = "argonne2"`` (2.0 → 4.0);
- :class:`ArgonneV1Config` / :class:`ArgonneV1ForCausalLM` — ``model_type = "argonne"`` (1.x);
- :func:`build_model` — recipe ``[model]`` section → model; :func:`load_original_checkpoint` —
  original ``.pt`` training checkpoints; :mod:`argonne_kit.model.loss` — loss helpers.

``register_auto_classes()`` (run by ``import argonne_kit``) registers both families with
``AutoConfig``, ``AutoModel`` and ``AutoModelForCausalLM``.
"""

from __future__ import annotations

from argonne_kit.model.build import build_config, build_model
from argonne_kit.model.config import ArgonneConfig, ArgonneV1Config
from argonne_kit.model.legacy import ArgonneV1ForCausalLM
from argonne_kit.model.loading import load_original_checkpoint
from argonne_kit.model.modeling import ArgonneForCausalLM


def register_auto_classes() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForCausalLM.from_pretrained`` resolve
    ``model_type`` ``argonne2`` and ``argonne`` to the kit's classes (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    for config_cls, model_cls in ((ArgonneConfig, ArgonneForCausalLM), (ArgonneV1Config, ArgonneV1ForCausalLM)):
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, model_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)


__all__ = ["ArgonneConfig", "ArgonneForCausalLM", "ArgonneV1Config", "ArgonneV1ForCausalLM", "build_config",
           "build_model", "load_original_checkpoint", "register_auto_classes"]
