"""The Argonne model family (Hugging Face-native) and its recipe sections.

- :class:`ArgonneConfig` (``model_type = "argonne2"``, 2.0 → 4.0): backbone :class:`ArgonneModel`,
  heads :class:`ArgonneForCausalLM` and :class:`ArgonneForSequenceClassification`;
- :class:`ArgonneV1Config` (``model_type = "argonne"``, 1.x): :class:`ArgonneV1Model`,
  :class:`ArgonneV1ForCausalLM`, :class:`ArgonneV1ForSequenceClassification`;
- :func:`build_model` — recipe ``[model]`` section → model; :func:`load_original_checkpoint` —
  original ``.pt`` training checkpoints; :mod:`argonne_kit.loss` — loss helpers.

Importing this package registers both families with ``AutoConfig``, ``AutoModel``,
``AutoModelForCausalLM`` and ``AutoModelForSequenceClassification`` (``register_auto_classes``).
"""

from __future__ import annotations

from transformers import PreTrainedConfig, PreTrainedModel

from argonne_kit.model.build import build_config, build_model
from argonne_kit.model.config import ArgonneConfig, ArgonneV1Config
from argonne_kit.model.hf import ArgonneHFMixin
from argonne_kit.model.legacy import ArgonneV1ForCausalLM, ArgonneV1ForSequenceClassification, ArgonneV1Model
from argonne_kit.model.loading import load_original_checkpoint
from argonne_kit.model.modeling import ArgonneForCausalLM, ArgonneForSequenceClassification, ArgonneModel
from argonne_kit.model.standalone import write_standalone_code

#: config class → (backbone, causal LM, sequence classification)
FAMILIES: dict[type[PreTrainedConfig], tuple[type[PreTrainedModel], type[PreTrainedModel], type[PreTrainedModel]]] = {
    ArgonneConfig: (ArgonneModel, ArgonneForCausalLM, ArgonneForSequenceClassification),
    ArgonneV1Config: (ArgonneV1Model, ArgonneV1ForCausalLM, ArgonneV1ForSequenceClassification),
}


# every save_pretrained of a kit model ships the standalone code (see argonne_kit.model.standalone)
ArgonneHFMixin.export_code = write_standalone_code


def register_auto_classes() -> None:
    """Make the transformers Auto classes resolve ``model_type`` ``argonne2`` and ``argonne``
    to the kit's classes (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    for config_cls, (backbone, causal_lm, classifier) in FAMILIES.items():
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, backbone, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, causal_lm, exist_ok=True)
        AutoModelForSequenceClassification.register(config_cls, classifier, exist_ok=True)


register_auto_classes()

__all__ = [
    "ArgonneConfig",
    "ArgonneForCausalLM",
    "ArgonneForSequenceClassification",
    "ArgonneModel",
    "ArgonneV1Config",
    "ArgonneV1ForCausalLM",
    "ArgonneV1ForSequenceClassification",
    "ArgonneV1Model",
    "build_config",
    "build_model",
    "load_original_checkpoint",
    "register_auto_classes",
]
