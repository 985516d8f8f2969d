"""Every key a recipe can set either has an observable effect, shown by a named test, or is refused.

The keys are enumerated from the schema (the core sections), the model kinds and the registry (the
config class of every registered attention backend, objective, parallel strategy, data source and
schedule), so a field added later without an entry in ``SHOWN_BY`` fails
:func:`test_every_recipe_key_has_an_entry`. Each entry names a test (``path::function``) that
builds the component (or runs the step) with a changed value and asserts the result differs; the
function must exist and mention the key. The cheap effects nobody else shows are asserted here.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import attrs
import pytest
import torch

from argonne_kit.probe import ChatProbe, EvalConfig
from argonne_kit.recipe.model_sections import MODEL_KINDS, Argonne2ModelConfig
from argonne_kit.recipe.schema import CORE_SECTIONS
from argonne_kit.recipe.sections import RunConfig
from argonne_kit.registry import KINDS, get_registry

ROOT = Path(__file__).resolve().parents[2]
HERE = "tests/recipes/test_every_key_has_an_effect.py"
KEYS = "tests/recipes/test_recipe_keys.py"  # model, clm, schedule, optim and FP8 keys, with its own completeness checks


def recipe_keys() -> dict[str, str]:
    """Every settable key: ``section.field`` (core), ``model.<kind>.field`` and
    ``<kind>.<component>.field`` (plugins) → the name a recipe writes."""
    keys = {}
    for section, cls in CORE_SECTIONS.items():
        keys.update({f"{section}.{f.name}": f.metadata.get("key", f.name) for f in attrs.fields(cls)})
    for kind, cls in MODEL_KINDS.items():
        keys.update({f"model.{kind}.{f.name}": f.name for f in attrs.fields(cls)})
    registry = get_registry()
    for kind in KINDS:
        for name in registry.names(kind):
            cls = registry.get(kind, name).config_cls
            if cls.__module__.split(".")[0] != "argonne_plugins":
                continue  # a component some test registered for itself, not one a user can pick
            keys.update({f"{kind}.{name}.{f.name}": f.name for f in attrs.fields(cls)})
    return keys


def _model_keys(kind: str, fields: list[str]) -> dict[str, str]:
    return {f"model.{kind}.{f}": KEYS for f in fields}


def _data(component: str, **entries: str) -> dict[str, str]:
    return {f"data.{component}.{field}": test for field, test in entries.items()}


DATA = "tests/data/test_data_keys.py"
CHAT = "tests/data/test_chat.py"
PREF = "tests/data/test_preference.py"
BINS = "tests/data/test_bin_shards.py"
FWP = "tests/data/test_fineweb_parquet.py"
STRAT = "tests/parallel/test_strategies.py"
DIST = "tests/parallel/test_distributed.py"
CKPT = "tests/train/test_trainer_checkpoints.py"
DPO = "tests/objectives/test_objective_dpo.py"
COT = "tests/objectives/test_objective_cot.py"
E2E = "tests/objectives/test_chat_stages_e2e.py"
STEP = "tests/train/test_trainer_step.py"
CHAIN = "tests/train/test_trainer_chaining.py"
QUICKSTART = "tests/train/test_trainer_quickstart.py::test_quickstart_trains_validates_checkpoints_and_exports"
DIVERGENCE = f"{CKPT}::test_divergence_stops_after_consecutive_failed_steps_and_names_the_last_good_checkpoint"

#: key → the test that shows its effect (``path::function``; a bare path = the module's own
#: completeness-checked tests, for the keys of ``test_recipe_keys.py``).
SHOWN_BY: dict[str, str] = {
    **_model_keys("argonne2", [f.name for f in attrs.fields(MODEL_KINDS["argonne2"])]),
    **_model_keys("argonne", [f.name for f in attrs.fields(MODEL_KINDS["argonne"])]),
    **{f"objective.clm.{f}": KEYS for f in ("z_loss_weight", "loss_chunk_size", "mtp_horizon", "mtp_loss_weight")},
    **{f"schedule.constant.{f}": KEYS for f in ("warmup_steps",)},
    **{f"schedule.cosine.{f}": KEYS for f in ("warmup_steps", "min_lr_ratio")},
    **{
        f"schedule.wsd.{f}": KEYS
        for f in ("warmup_steps", "cooldown_frac", "cooldown_steps", "decay_shape", "min_lr_ratio", "allow_no_decay")
    },
    **{f"optim.{f}": KEYS for f in ("lr", "betas", "eps", "weight_decay", "no_decay_norms", "no_decay_embeddings")},
    "optim.fused": KEYS,
    "optim.grad_clip": "tests/train/test_trainer_callbacks.py::test_grad_clip_bounds_the_update",
    "train.fp8": "tests/train/test_fp8.py::test_block_linears_and_the_tied_head_are_converted_and_logged",
    "train.fp8_lm_head": "tests/train/test_fp8.py::test_fp8_lm_head_false_keeps_the_head",
    # [train]
    "train.total_batch_tokens": f"{STEP}::test_batch_math_refusal_prints_requested_and_possible",
    "train.max_tokens": QUICKSTART,
    "train.epochs": "tests/train/test_trainer_smoke.py::test_epochs_set_the_phase_length_from_the_data_size",
    "train.activation_checkpointing": f"{STRAT}::test_activation_checkpointing_keeps_names_and_gradients",
    "train.checkpoint_every": f"{HERE}::test_checkpoint_every_and_compile_mode_reach_the_blocks",
    "train.compile": f"{STRAT}::test_compile_is_applied_per_block_in_place",
    "train.compile_mode": f"{HERE}::test_checkpoint_every_and_compile_mode_reach_the_blocks",
    "train.seed": f"{E2E}::test_the_seed_reaches_the_data_order",
    "train.val_every": QUICKSTART,
    "train.val_batches": QUICKSTART,
    "train.max_failed_steps": DIVERGENCE,
    "train.seq_len": f"{HERE}::test_batch_and_length_keys_set_the_step_math",
    "train.micro_batch_size": f"{HERE}::test_batch_and_length_keys_set_the_step_math",
    "train.max_steps": f"{HERE}::test_batch_and_length_keys_set_the_step_math",
    "train.precision": f"{HERE}::test_precision_and_device_pick_the_compute",
    "train.device": f"{HERE}::test_precision_and_device_pick_the_compute",
    "train.log_every": f"{HERE}::test_log_every_sets_the_metrics_lines",
    "tokenizer.path": f"{HERE}::test_tokenizer_path_picks_the_tokenizer",
    "logging.progress": f"{HERE}::test_logging_keys_pick_the_outputs",
    "logging.tensorboard": f"{HERE}::test_logging_keys_pick_the_outputs",
    # [checkpoint]
    "checkpoint.interval_steps": f"{HERE}::test_checkpoint_intervals_request_saves",
    "checkpoint.interval_s": f"{HERE}::test_checkpoint_intervals_request_saves",
    "checkpoint.keep_last": f"{CKPT}::test_retention_keeps_last_and_milestones_and_logs_each_deletion",
    "checkpoint.keep_every_steps": f"{CKPT}::test_retention_keeps_last_and_milestones_and_logs_each_deletion",
    "checkpoint.async_save": "tests/hardening/test_async_save.py::test_the_loop_stalls_only_for_the_copy",
    # [run]
    "run.wall_time_s": f"{HERE}::test_run_stop_keys_set_when_the_run_stops",
    "run.deadline_epoch": f"{HERE}::test_run_stop_keys_set_when_the_run_stops",
    "run.exit_margin_s": f"{HERE}::test_run_stop_keys_set_when_the_run_stops",
    "run.nproc": "tests/parallel/test_slurm.py::test_cli_refuses_a_process_count_the_recipe_does_not_expect",
    "run.dir": QUICKSTART,
    "run.resume": f"{CKPT}::test_wall_time_saves_and_exits_zero_without_export_then_resume_completes",
    # [init]
    "init.carry": f"{CHAIN}::test_carry_all_continues_schedule_and_data_from_a_checkpoint",
    "init.from_": f"{CHAIN}::test_new_phase_from_a_run_dir_carries_weights_and_counters_with_a_fresh_schedule",
    # [sample]
    "sample.prompt": f"{HERE}::test_sample_keys_change_the_sample",
    "sample.max_new_tokens": f"{HERE}::test_sample_keys_change_the_sample",
    "sample.temperature": f"{HERE}::test_sample_keys_change_the_sample",
    "sample.top_p": f"{HERE}::test_sample_keys_change_the_sample",
    "sample.enabled": f"{HERE}::test_sample_keys_change_the_sample",
    # [eval]
    "eval.probe": f"{E2E}::test_probe_runs_before_during_after_without_changing_training",
    "eval.probe_every": f"{E2E}::test_probe_runs_before_during_after_without_changing_training",
    "eval.probe_prompts": f"{HERE}::test_eval_probe_keys_shape_the_probe",
    "eval.probe_max_new_tokens": f"{HERE}::test_eval_probe_keys_shape_the_probe",
    "eval.probe_system": f"{HERE}::test_eval_probe_keys_shape_the_probe",
    # [attention]
    "attention.flash2.deterministic": "tests/attention/test_flash2.py::test_deterministic_reaches_flash_attn",
    "attention.flex.compile": f"{HERE}::test_flex_compile_picks_the_compiled_kernel",
    # [objective]
    "objective.cot.think_weight": f"{COT}::test_think_weight_scales_only_the_thinking_tokens",
    "objective.cot.think_open_id": f"{COT}::test_think_weight_scales_only_the_thinking_tokens",
    "objective.cot.think_close_id": f"{COT}::test_think_weight_scales_only_the_thinking_tokens",
    "objective.dpo.beta": f"{DPO}::test_gradients_vanish_as_beta_goes_to_zero",
    "objective.dpo.loss_type": f"{DPO}::test_preference_loss_matches_hand_formula_on_fixed_scores",
    "objective.dpo.label_smoothing": f"{DPO}::test_preference_loss_matches_hand_formula_on_fixed_scores",
    "objective.dpo.chosen_sft_weight": f"{DPO}::test_objective_end_to_end_matches_hand_computation",
    "objective.dpo.precompute_reference": f"{DPO}::test_precomputed_reference_scores_give_the_same_loss",
    "objective.dpo.loss_chunk_size": f"{HERE}::test_loss_chunk_size_bounds_the_rows_the_head_sees",
    "objective.sft.loss_chunk_size": f"{HERE}::test_loss_chunk_size_bounds_the_rows_the_head_sees",
    "objective.cot.loss_chunk_size": f"{HERE}::test_loss_chunk_size_bounds_the_rows_the_head_sees",
    "objective.dpo.reference": f"{DPO}::test_missing_reference_is_a_clear_error",
    "objective.dpo.score": f"{DPO}::test_objective_end_to_end_matches_hand_computation",
    # [parallel]
    "parallel.ddp.timeout_s": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    "parallel.ddp.bucket_cap_mb": f"{HERE}::test_ddp_keys_reach_distributed_data_parallel",
    "parallel.ddp.find_unused_parameters": f"{HERE}::test_ddp_keys_reach_distributed_data_parallel",
    "parallel.fsdp.timeout_s": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    "parallel.fsdp.reshard_after_forward": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.fsdp.reduce_dtype": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.fsdp.mixed_precision": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.tp.degree": f"{STRAT}::test_tp_recipe_checks_and_batch_math",
    "parallel.tp.timeout_s": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    "parallel.tp.backend": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    "parallel.tp.reshard_after_forward": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.tp.reduce_dtype": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.tp.mixed_precision": f"{HERE}::test_fsdp_keys_reach_fully_shard",
    "parallel.ddp.backend": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    "parallel.fsdp.backend": f"{HERE}::test_backend_and_timeout_reach_the_process_group",
    # [data]
    **_data(
        "bin_shards",
        path=f"{BINS}::test_embedded_corpus_and_relative_paths",
        split=f"{DATA}::test_bin_shards_split_picks_the_embedded_split",
        mode=f"{BINS}::test_document_mode_keeps_each_window_inside_one_document",
        shuffle=f"{BINS}::test_exact_resume_with_shuffle",
        num_workers=f"{BINS}::test_exact_resume_with_shuffle",
    ),
    **_data(
        "fineweb_parquet",
        path=f"{FWP}::test_empty_rows_are_counted_and_bad_columns_named",
        split=f"{DATA}::test_fineweb_parquet_split_picks_the_embedded_split",
        text_column=f"{FWP}::test_empty_rows_are_counted_and_bad_columns_named",
        shuffle=f"{FWP}::test_exact_resume_with_shuffle",
        chunk_rows=f"{FWP}::test_ranks_read_disjoint_documents_and_seeds_matter",
        append_eos=f"{DATA}::test_fineweb_parquet_append_eos_separates_documents",
        num_workers=f"{FWP}::test_exact_resume_with_shuffle",
    ),
    **_data(
        "mixture",
        sources="tests/data/test_mixture.py::test_recipe_errors_name_the_nested_key",
        total_tokens=f"{DATA}::test_mixture_total_tokens_sets_the_size",
    ),
    **_data(
        "ultrachat",
        path=f"{DATA}::test_shuffle_changes_the_order",
        messages_column=f"{DATA}::test_messages_and_prompt_columns_name_the_columns",
        prompt_column=f"{DATA}::test_messages_and_prompt_columns_name_the_columns",
        pad_to=f"{DATA}::test_pad_to_longest_narrows_the_batch",
        shuffle=f"{DATA}::test_shuffle_changes_the_order",
        mask=f"{CHAT}::test_all_assistant_and_think_scaffold",
        think_scaffold=f"{CHAT}::test_all_assistant_and_think_scaffold",
        chat_template_kwargs=f"{DATA}::test_chat_template_kwargs_reach_the_template",
        chat_template="tests/data/test_chat_template_argonne1.py::test_a_jinja_string_replaces_the_template",
        packing=f"{CHAT}::test_packing_marks_segments_and_restarts_positions",
        max_drop_frac=f"{CHAT}::test_bad_rows_are_counted_by_reason_with_file_and_row",
        num_workers=f"{CHAT}::test_exact_resume",
    ),
    **_data(
        "cot",
        path=f"{DATA}::test_shuffle_changes_the_order",
        messages_column=f"{DATA}::test_messages_and_prompt_columns_name_the_columns",
        prompt_column=f"{DATA}::test_messages_and_prompt_columns_name_the_columns",
        pad_to=f"{DATA}::test_pad_to_longest_narrows_the_batch",
        shuffle=f"{DATA}::test_shuffle_changes_the_order",
        mask=f"{DATA}::test_chat_keys_shared_by_ultrachat_and_cot",
        think_scaffold=f"{DATA}::test_chat_keys_shared_by_ultrachat_and_cot",
        chat_template=f"{DATA}::test_chat_keys_shared_by_ultrachat_and_cot",
        packing=f"{DATA}::test_chat_keys_shared_by_ultrachat_and_cot",
        num_workers=f"{CHAT}::test_exact_resume",  # the same ChatExampleSource code as ultrachat's
        allow_non_reasoning=f"{DATA}::test_cot_allow_non_reasoning_and_source_column",
        source_column=f"{DATA}::test_cot_allow_non_reasoning_and_source_column",
        chat_template_kwargs=f"{DATA}::test_chat_template_kwargs_reach_the_template",
        max_drop_frac=f"{CHAT}::test_cot_defaults_are_no_op_transforms",
        max_think_tokens=f"{CHAT}::test_cot_defaults_are_no_op_transforms",
        preserve_raw_reasoning=f"{CHAT}::test_cot_defaults_are_no_op_transforms",
    ),
    **_data(
        "preference",
        path=f"{DATA}::test_shuffle_changes_the_order",
        prompt_column=f"{DATA}::test_preference_prompt_column_names_the_column",
        think_scaffold=f"{DATA}::test_preference_think_scaffold_prefixes_both_answers",
        pad_to=f"{DATA}::test_pad_to_longest_narrows_the_batch",
        chat_template_kwargs=f"{DATA}::test_chat_template_kwargs_reach_the_template",
        max_drop_frac=f"{DATA}::test_preference_max_drop_frac_sets_the_refusal",
        shuffle=f"{DATA}::test_shuffle_changes_the_order",
        num_workers=f"{PREF}::test_exact_resume_and_pairs_on_one_rank",
    ),
}


@cache
def _functions(path: str) -> dict[str, str]:
    """Test function name → its source (decorators included) in ``path``."""
    text = (ROOT / path).read_text()
    lines = text.splitlines()
    out = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return out


def test_every_recipe_key_has_an_entry():
    keys = recipe_keys()
    missing = sorted(set(keys) - set(SHOWN_BY))
    assert not missing, f"recipe keys without a test of their effect: {missing}"
    assert not sorted(set(SHOWN_BY) - set(keys)), "entries for keys that no longer exist"


def test_every_entry_names_a_test_that_mentions_its_key():
    keys = recipe_keys()
    problems = []
    for key, where in SHOWN_BY.items():
        name = keys[key]
        if where == KEYS:  # checked there against the config classes themselves
            if name not in (ROOT / KEYS).read_text():
                problems.append(f"{key}: {KEYS} never mentions {name!r}")
            continue
        path, function = where.split("::")
        functions = _functions(path)
        if function not in functions:
            problems.append(f"{key}: {where} does not exist")
        elif name not in functions[function]:
            problems.append(f"{key}: {where} never mentions {name!r}")
    assert not problems, "\n".join(problems)


# -- effects shown here --------------------------------------------------------------------------
def test_flex_compile_picks_the_compiled_kernel(monkeypatch):
    import argonne_kit.kernels.flex as flex_module
    from argonne_kit.contracts.attention import AttentionSpec

    compiled = []

    def recording_compile():
        compiled.append(True)
        return flex_module.flex_attention  # the eager kernel: same numbers, no compile cost

    monkeypatch.setattr(flex_module, "_compiled_flex_attention", recording_compile)
    component = get_registry().get("attention", "flex")
    q, k, v = torch.randn(3, 1, 2, 16, 8).unbind(0)
    with torch.no_grad():
        component.factory(component.config_cls())(q, k, v, AttentionSpec())  # None: eager on CPU
        assert compiled == []
        component.factory(component.config_cls(compile=True))(q, k, v, AttentionSpec())
    assert compiled == [True]


def test_run_stop_keys_set_when_the_run_stops():
    from argonne_kit.train.stop import StopConditions

    start = 1_000_000.0
    assert StopConditions(RunConfig(), start).reason(start + 1e6) is None
    wall = StopConditions(RunConfig(wall_time_s=100, exit_margin_s=10), start)
    assert wall.reason(start + 89) is None and "wall time" in wall.reason(start + 90)
    deadline = StopConditions(RunConfig(deadline_epoch=start + 500, exit_margin_s=0), start)
    assert deadline.reason(start + 499) is None and "deadline" in deadline.reason(start + 500)
    margin = StopConditions(RunConfig(deadline_epoch=start + 500, exit_margin_s=200), start)
    assert "deadline" in margin.reason(start + 300)


def test_checkpoint_every_and_compile_mode_reach_the_blocks(monkeypatch):
    from argonne_kit.contracts.parallel import WrapOptions
    from argonne_kit.model import build_model
    from argonne_plugins.parallel.transforms import apply_block_transforms, find_blocks

    modes = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, mode=None, **kw: modes.append(mode))
    model = build_model(Argonne2ModelConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2), vocab_size=64)
    options = WrapOptions(activation_checkpointing=True, checkpoint_every=2, compile=True, compile_mode="max-autotune")
    apply_block_transforms(model, options)
    wrapped = ["forward" in vars(block) for block in find_blocks(model)]  # checkpointed: forward replaced
    assert wrapped == [True, False, True, False]
    assert modes == ["max-autotune"] * 4


@pytest.fixture(scope="module")
def tiny_lm():
    from argonne_kit.data.tokenizer import load_tokenizer
    from argonne_kit.model import build_model

    tokenizer = load_tokenizer(None)[0]
    torch.manual_seed(0)
    config = Argonne2ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, logit_softcap=0.0)
    return build_model(config, vocab_size=len(tokenizer)).eval(), tokenizer


def test_sample_keys_change_the_sample(tiny_lm):
    from argonne_kit.recipe.sections import SampleConfig
    from argonne_kit.train.sampling import generate, sample_text

    model, tokenizer = tiny_lm

    def sample(**cfg):
        return generate(model, tokenizer, SampleConfig(**{"max_new_tokens": 8, **cfg}), seed=0)

    greedy = sample(temperature=0.0)
    assert sample(temperature=0.0, prompt="Once upon").startswith("Once upon") and greedy.startswith("Long long")
    assert len(tokenizer(sample(temperature=0.0, max_new_tokens=2))["input_ids"]) < len(tokenizer(greedy)["input_ids"])
    hot = sample(temperature=5.0, top_p=1.0)
    assert hot != greedy
    assert sample(temperature=5.0, top_p=1e-6) == greedy  # the nucleus keeps only the top token
    off = SampleConfig(enabled=False)
    assert sample_text(None, model, tokenizer, off, seed=0, build_copy=lambda: model, log=print) is None


def test_eval_probe_keys_shape_the_probe(tmp_path):
    default = ChatProbe.from_config(EvalConfig())
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\n")
    probe = ChatProbe.from_config(
        EvalConfig(probe_prompts=str(prompts), probe_max_new_tokens=7, probe_system="Be brief.")
    )
    assert len(default.conversations) == 6 and default.max_new_tokens == 160
    assert probe.conversations == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]
    ]
    assert probe.max_new_tokens == 7


def test_ddp_keys_reach_distributed_data_parallel(monkeypatch):
    import argonne_plugins.parallel.ddp as ddp_module

    calls = []
    monkeypatch.setattr(ddp_module, "DistributedDataParallel", lambda model, **kwargs: calls.append(kwargs))
    component = get_registry().get("parallel", "ddp")
    for config in (component.config_cls(), component.config_cls(bucket_cap_mb=4.0, find_unused_parameters=True)):
        component.factory(config).apply_data_parallel(torch.nn.Linear(2, 2), None)
    assert [(c["bucket_cap_mb"], c["find_unused_parameters"]) for c in calls] == [(25.0, False), (4.0, True)]


@pytest.mark.parametrize("strategy", ["fsdp", "tp"])  # tp shards its dp dimension with the same function
def test_fsdp_keys_reach_fully_shard(monkeypatch, strategy):
    import argonne_plugins.parallel.fsdp as fsdp_module
    from argonne_kit.contracts.parallel import WrapOptions
    from argonne_kit.model import build_model

    calls = []
    monkeypatch.setattr(fsdp_module, "fully_shard", lambda module, **kwargs: calls.append((module, kwargs)))
    model = build_model(Argonne2ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2), vocab_size=64)
    component = get_registry().get("parallel", strategy)

    def block_call(**cfg):
        calls.clear()
        fsdp_module.shard_model(model, None, component.config_cls(**cfg), WrapOptions(param_dtype=torch.bfloat16))
        _block, kwargs = calls[0]
        policy = kwargs["mp_policy"]
        return kwargs["reshard_after_forward"], policy.param_dtype, policy.reduce_dtype

    assert block_call() == (True, None, None)
    assert block_call(reshard_after_forward=False) == (False, None, None)
    assert block_call(mixed_precision=True) == (True, torch.bfloat16, torch.float32)
    assert block_call(mixed_precision=True, reduce_dtype="bf16") == (True, torch.bfloat16, torch.bfloat16)


def test_checkpoint_intervals_request_saves():
    import time
    import types

    from argonne_kit.train.callbacks import CheckpointTriggers

    def requested(interval_steps, interval_s, step, seconds_since_save):
        saves = []
        trainer = types.SimpleNamespace(
            counters=types.SimpleNamespace(global_step=step - 1),
            strategy=types.SimpleNamespace(is_main=True),
            last_save_time=time.monotonic() - seconds_since_save,
            request_save=lambda: saves.append(step),
        )
        CheckpointTriggers(interval_steps, interval_s).pre_reduce(trainer)
        return bool(saves)

    assert not requested(None, None, 4, 1e6)
    assert requested(4, None, 4, 0) and not requested(4, None, 5, 0)
    assert requested(None, 60.0, 5, 61) and not requested(None, 60.0, 5, 59)


def test_logging_keys_pick_the_outputs(tmp_path):
    from argonne_kit.train.metrics import MetricsLog, Progress

    progress = "bar"  # logging.progress: a tqdm bar even without a terminal; plain = log lines only
    assert Progress(progress, total=10, initial=0, enabled=True).bar is not None
    assert Progress("plain", total=10, initial=0, enabled=True).bar is None
    logs = []
    assert MetricsLog(tmp_path / "a", tensorboard=False, log=logs.append).tb is None and logs == []
    mirrored = MetricsLog(tmp_path / "b", tensorboard=True, log=logs.append)
    # with the package installed events are written; without it, the run says so
    assert mirrored.tb is not None or "tensorboard = true" in logs[0]


@pytest.mark.parametrize("objective", ["sft", "cot", "dpo"])
def test_loss_chunk_size_bounds_the_rows_the_head_sees(objective):
    """Chunked cross-entropy gives the same loss (shown in each objective's tests); its effect is
    that the LM head never sees more than ``loss_chunk_size`` positions (of every row) at once."""
    from argonne_kit.model import build_model

    torch.manual_seed(0)
    model = build_model(Argonne2ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2), vocab_size=64)
    ids = torch.randint(0, 64, (2, 24))
    labels = ids.clone()
    labels[:, :6] = -100
    mask = torch.ones_like(ids)
    if objective == "dpo":
        batch = {
            f"{side}_{k}": v
            for side in ("chosen", "rejected")
            for k, v in (("input_ids", ids), ("labels", labels), ("attention_mask", mask))
        }
    else:
        batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    component = get_registry().get("objective", objective)

    def largest_head_call(chunk):
        built = component.factory(component.config_cls(loss_chunk_size=chunk))
        if objective == "dpo":
            built.attach_reference(
                build_model(
                    Argonne2ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2), vocab_size=64
                )
            )
        rows = []
        original = model.logits_from_hidden
        model.logits_from_hidden = lambda h: rows.append(h.reshape(-1, h.size(-1)).size(0)) or original(h)
        try:
            built(model, batch)
        finally:
            del model.logits_from_hidden
        return max(rows)

    whole, chunked = largest_head_call(0), largest_head_call(7)
    assert chunked < whole and chunked % 7 == 0  # 7 positions of every row per head call


def test_batch_and_length_keys_set_the_step_math():

    from argonne_kit.contracts.data import DataSize
    from argonne_kit.recipe.resolvers import batch_math
    from argonne_kit.recipe.sections import TrainConfig
    from argonne_kit.train.runner import phase_steps

    assert batch_math(None, micro_batch_size=2, seq_len=8, dp_world=1)["tokens_per_step"] == 16
    assert batch_math(None, micro_batch_size=4, seq_len=8, dp_world=1)["tokens_per_step"] == 32
    assert batch_math(None, micro_batch_size=2, seq_len=16, dp_world=1)["tokens_per_step"] == 32
    assert batch_math(64, micro_batch_size=2, seq_len=8, dp_world=1)["grad_accum_steps"] == 4
    size = DataSize(tokens=1600)
    assert phase_steps(TrainConfig(), size, 16, 2) == 100
    assert phase_steps(TrainConfig(epochs=2), size, 16, 2) == 200
    assert phase_steps(TrainConfig(max_steps=7), size, 16, 2) == 7
    assert phase_steps(TrainConfig(max_tokens=50), size, 16, 2) == 3


def test_precision_and_device_pick_the_compute():
    from argonne_kit.train.trainer import autocast_context
    from argonne_plugins.parallel.base import pick_device

    cpu = torch.device("cpu")
    with autocast_context("fp32", cpu):
        assert torch.get_autocast_dtype("cpu") is not None and not torch.is_autocast_enabled("cpu")
    with autocast_context("bf16", cpu):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") is torch.bfloat16
    assert pick_device("cpu", 0) == cpu
    assert pick_device("auto", 0).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_log_every_sets_the_metrics_lines(tmp_path):
    import json
    import types

    from argonne_kit.train.callbacks import MetricsAndProgress

    def lines(log_every):
        run_dir = tmp_path / str(log_every)
        callback = MetricsAndProgress(
            run_dir, tensorboard=False, progress="plain", log_every=log_every, is_main=True, log=print
        )
        counters = types.SimpleNamespace(phase_step=0, global_step=0, global_tokens=0, train_time_s=0.0)
        trainer = types.SimpleNamespace(
            counters=counters,
            s=types.SimpleNamespace(total_steps=10, tokens_per_step=4),
            data=types.SimpleNamespace(epoch=0),
            is_last_step=False,
        )
        callback.pre_train(trainer)
        for step in range(1, 10):
            counters.phase_step = counters.global_step = step
            callback.post_batch(trainer, {"loss": 1.0, "lr": 1e-3, "grad_norm": 1.0})
        callback.metrics.close()
        return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    assert lines(1) == list(range(1, 10))
    assert lines(4) == [1, 4, 8]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "tp"])
def test_backend_and_timeout_reach_the_process_group(monkeypatch, strategy):
    import datetime

    import torch.distributed as dist

    from argonne_kit.errors import RecipeError

    calls = []
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    component = get_registry().get("parallel", strategy)

    def init(**cfg):
        built = component.factory(component.config_cls(**cfg))
        built.device = torch.device("cpu")
        built._init_process_group()
        return calls[-1]["backend"], calls[-1]["timeout"]

    assert init() == ("gloo", datetime.timedelta(seconds=component.config_cls().timeout_s))
    assert init(backend="gloo", timeout_s=5) == ("gloo", datetime.timedelta(seconds=5))
    with pytest.raises(RecipeError, match="nccl needs CUDA"):
        init(backend="nccl")


def test_tokenizer_path_picks_the_tokenizer(tmp_path):
    from argonne_kit.data.tokenizer import load_tokenizer

    embedded = load_tokenizer(None)[0]
    embedded.add_tokens(["<only_in_the_saved_copy>"])
    embedded.save_pretrained(tmp_path / "tok")
    assert len(load_tokenizer(str(tmp_path / "tok"))[0]) == len(load_tokenizer(None)[0]) + 1
