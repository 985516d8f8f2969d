"""Structuring and resolving: strict types, unknown keys with suggestions, plugin sections,
derived values and cross-section checks."""

import itertools

import pytest

from argonne_kit.errors import RecipeError
from argonne_kit.recipe import resolve_recipe
from argonne_kit.recipe.schema import CORE_SECTIONS, PluginSection


def test_resolve_fills_every_default_and_structures_plugin_sections(test_registry, recipe_dir):
    resolved = resolve_recipe(recipe_dir / "a.toml")
    recipe = resolved.recipe
    assert recipe.model.kind == "argonne2" and recipe.model.config.hidden_size == 64
    assert isinstance(recipe.attention, PluginSection) and recipe.attention.kind == "auto"
    assert recipe.data.kind == "tokens" and recipe.data.config.path == "data"
    assert recipe.objective.kind == "clm" and recipe.parallel.kind == "single"
    assert recipe.schedule.kind == "constant"
    assert recipe.val_data is None
    assert recipe.optim.lr == 3e-4 and recipe.optim.betas == (0.9, 0.95)
    assert resolved.derived["model"]["head_dim"] == 16
    assert resolved.derived["model"]["intermediate_size"] == 256  # round_up_256(int(8*64/3))
    assert resolved.derived["train"] == {"grad_accum_steps": 1, "tokens_per_step": 64, "dp_world_assumed": 1}


def test_unknown_key_names_file_path_and_suggestion(test_registry, recipe_dir):
    with pytest.raises(RecipeError) as err:
        resolve_recipe(recipe_dir / "a.toml", ["optim.learning_rat=1e-4"])
    assert str(err.value) == "command line: optim.learning_rat: unknown key; did you mean 'lr'?"
    (recipe_dir / "typo.toml").write_text('extends = "a.toml"\n[train]\nseq_lenn = 4\n')
    with pytest.raises(RecipeError, match=r"typo\.toml: train\.seq_lenn: unknown key; did you mean 'seq_len'"):
        resolve_recipe(recipe_dir / "typo.toml")


def test_keys_have_one_name(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match=r"optim\.learning_rate: unknown key; did you mean 'lr'\?"):
        resolve_recipe(recipe_dir / "a.toml", ["optim.learning_rate=5e-4"])


def test_wrong_types_are_not_coerced(test_registry, recipe_dir):
    with pytest.raises(
        RecipeError,
        match=r'attention\.window: expected int \| none, got "256"|attention\.window: expected int, got "256"',
    ):
        resolve_recipe(recipe_dir / "a.toml", ['attention.window="256"'])
    with pytest.raises(RecipeError, match=r"train\.seq_len: expected int, got 1\.5"):
        resolve_recipe(recipe_dir / "a.toml", ["train.seq_len=1.5"])
    with pytest.raises(RecipeError, match=r"train\.compile: expected bool, got 1"):
        resolve_recipe(recipe_dir / "a.toml", ["train.compile=1"])
    with pytest.raises(
        RecipeError,
        match=r"train\.precision: expected one of 'fp32' \| 'bf16' \| 'fp16', got \"bf17\"; did you mean 'bf16'",
    ):
        resolve_recipe(recipe_dir / "a.toml", ["train.precision=bf17"])


def test_int_is_accepted_for_float(test_registry, recipe_dir):
    assert resolve_recipe(recipe_dir / "a.toml", ["optim.lr=1"]).recipe.optim.lr == 1.0


def test_validators_name_the_path(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match=r"train.micro_batch_size: micro_batch_size must be > 0, got 0"):
        resolve_recipe(recipe_dir / "a.toml", ["train.micro_batch_size=0"])


def test_unknown_section_and_plugin_name_suggest(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match=r"optimm: unknown section; did you mean 'optim'"):
        resolve_recipe(recipe_dir / "a.toml", ["optimm.lr=1.0"])
    with pytest.raises(
        RecipeError,
        match=r"schedule\.kind: no schedule plugin named 'wsdd'; did you mean 'wsd'\?; registered: constant, cosine, wsd",
    ):
        resolve_recipe(recipe_dir / "a.toml", ["schedule.kind=wsdd"])


def test_plugin_config_resolve_hook_runs(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match="never decays"):
        resolve_recipe(recipe_dir / "a.toml", ["schedule.kind=wsd"])
    resolved = resolve_recipe(recipe_dir / "a.toml", ["schedule.kind=wsd", "schedule.allow_no_decay=true"])
    assert resolved.recipe.schedule.config.allow_no_decay is True


def test_batch_math_refuses_non_dividing_token_batch(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match=r"requested 100 tokens per step .* nearest possible values are 64 and 128"):
        resolve_recipe(recipe_dir / "a.toml", ["train.total_batch_tokens=100"])
    resolved = resolve_recipe(recipe_dir / "a.toml", ["train.total_batch_tokens=512", "run.nproc=2"])
    assert resolved.derived["train"]["grad_accum_steps"] == 4


def test_heads_must_divide(test_registry, recipe_dir):
    with pytest.raises(RecipeError, match="num_key_value_heads: 3 does not divide num_attention_heads 4"):
        resolve_recipe(recipe_dir / "a.toml", ["model.num_key_value_heads=3"])


def test_interleaved_windows_are_derived_per_layer(test_registry, recipe_dir):
    resolved = resolve_recipe(
        recipe_dir / "a.toml", ["model.interleaved_local_attention=true", "model.local_attention_window=16"]
    )
    assert resolved.derived["model"]["layer_windows"] == [0, 16]


def test_toml_round_trip_is_stable(test_registry, recipe_dir, tmp_path):
    resolved = resolve_recipe(recipe_dir / "b.toml")
    out = tmp_path / "resolved.toml"
    out.write_text(resolved.to_toml())
    again = resolve_recipe(out)
    assert again.to_dict() == resolved.to_dict()


def test_every_config_field_is_documented_and_optional_fields_default_to_none(test_registry):
    """The schema promise behind dropping None when writing TOML: optional ⇒ default None."""
    import ast
    import inspect
    import typing

    import attrs

    from argonne_kit.recipe.model_sections import MODEL_KINDS

    classes = list(CORE_SECTIONS.values()) + list(MODEL_KINDS.values())
    for comp in [c for p in test_registry.plugins() if p.distribution.name == "argonne-kit" for c in p.components]:
        classes.append(comp.config_cls)
    for cls in classes:
        hints = typing.get_type_hints(cls)
        source = inspect.getsource(cls)
        tree = ast.parse(source.lstrip() if source.startswith(" ") else source)
        body = tree.body[0].body
        documented = {
            stmt.target.id
            for stmt, nxt in itertools.pairwise(body)
            if isinstance(stmt, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        }
        for field in attrs.fields(cls):
            assert field.name in documented, f"{cls.__name__}.{field.name} has no docstring"
            if type(None) in typing.get_args(hints[field.name]):
                assert field.default is None, (
                    f"{cls.__name__}.{field.name} is optional but defaults to {field.default!r}"
                )


def test_window_needs_a_backend_that_has_windows(test_registry, recipe_dir, plugin_kit):
    """D-4: a configured window is never silently dropped by a backend without windows."""
    from argonne_kit.contracts.attention import AttentionBackend, Capabilities
    from argonne_kit.registry import Distribution

    class NoWindow(AttentionBackend):
        name = "nowindow"
        capabilities = Capabilities(window=False)

        def forward(self, q, k, v, spec, key_padding_mask=None, segment_ids=None):
            return q

    import types

    from argonne_kit.registry import hookimpl

    @hookimpl
    def argonne_kit_register_components(register):
        register("attention", "nowindow", lambda cfg: NoWindow(), plugin_kit.EmptyConfig)

    plugin = types.SimpleNamespace(argonne_kit_register_components=argonne_kit_register_components)
    test_registry.register_plugin(plugin, "nowindow-plugin", Distribution("nw", "1"))
    windowed = ["model.interleaved_local_attention=true", "model.local_attention_window=8"]
    with pytest.raises(
        RecipeError, match=r"attention\.kind: backend 'nowindow' has no sliding-window support.*on 1 layers"
    ):
        resolve_recipe(recipe_dir / "a.toml", ["attention.kind=nowindow", *windowed])
    assert resolve_recipe(recipe_dir / "a.toml", ["attention.kind=nowindow"]).recipe.attention.kind == "nowindow"
