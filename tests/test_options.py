"""The shared options schema: every field's type, range and default."""

from __future__ import annotations

import pytest

from pipeline.errors import OptionsError
from pipeline.options import FIELDS, GenerationOptions, parse_options
from pipeline.settings import load_settings


def test_defaults_without_env():
    opts = parse_options({})
    assert opts == GenerationOptions(
        generate_texture=True, remove_background=True, profile=3, seed=1234, model="auto", max_faces=40000
    )


def test_env_defaults(monkeypatch):
    monkeypatch.setenv("HY3D_PROFILE", "5")
    monkeypatch.setenv("HY3D_MODEL", "draft")
    opts = parse_options({})
    assert (opts.profile, opts.model) == (5, "draft")
    # A request value still wins over the env default.
    assert parse_options({"profile": 2}).profile == 2


@pytest.mark.parametrize("value", ["0", "6", "x"])
def test_bad_env_profile(monkeypatch, value):
    monkeypatch.setenv("HY3D_PROFILE", value)
    with pytest.raises(OptionsError, match="HY3D_PROFILE"):
        load_settings()


def test_unknown_field_named():
    with pytest.raises(OptionsError, match="Unknown field 'generate_textures'"):
        parse_options({"generate_textures": True})


def test_ignored_fields_are_not_unknown():
    assert parse_options({"image": "abc"}, ignore=("image",)).seed == 1234


# One wrong-type and one out-of-range value for every field.
WRONG_TYPE = {
    "generate_texture": [1, "true", None],
    "remove_background": [0, "false", None],
    "profile": [True, 2.5, "3", None],
    "seed": [False, 1.5, "7", None],
    "model": [1, True, None],
    "max_faces": [True, 40000.5, "40000", None],
    "steps": [True, 2.5, "30"],
    "guidance_scale": [True, "5"],
    "octree_resolution": [True, 256.5, "256"],
    "num_chunks": [True, "8000"],
    "texture_size": [True, 2048.0, "2048", None],
    "paint_model": [1, None],
    "smooth_normals": [1, "true", None],
    "output": [1, None, True],
    "preview": [1, "true", None],
}
OUT_OF_RANGE = {
    "profile": [0, 6, -1, 9],
    "seed": [-1, 2**32, 10**400, -(10**400)],
    "model": ["hunyuan3d-3", "Draft", ""],
    "max_faces": [999, 500001],
    "steps": [0, 101],
    "guidance_scale": [-0.1, 20.5, float("nan"), float("inf"), 10**400],
    "octree_resolution": [63, 513],
    "num_chunks": [999, 500001],
    "texture_size": [256, 4096, 1000],
    "paint_model": ["hunyuan3d-paint-v2-1", ""],
    "output": ["base64", "URL", ""],
}


def test_tables_cover_every_field():
    names = {f.name for f in FIELDS}
    assert set(WRONG_TYPE) == names
    assert set(OUT_OF_RANGE) == names - {"generate_texture", "remove_background", "smooth_normals", "preview"}


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in WRONG_TYPE.items() for v in vs])
def test_wrong_type_rejected_with_field_name(field, value):
    with pytest.raises(OptionsError) as info:
        parse_options({field: value})
    message = str(info.value)
    assert f"Field '{field}'" in message
    assert "must be" in message


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in OUT_OF_RANGE.items() for v in vs])
def test_out_of_range_rejected_with_field_name(field, value):
    with pytest.raises(OptionsError, match=f"Field '{field}'"):
        parse_options({field: value})


def test_range_message_is_precise():
    with pytest.raises(OptionsError) as info:
        parse_options({"profile": 9})
    assert str(info.value) == "Field 'profile' must be an integer from 1 to 5, got 9."


def test_nullable_fields_mean_model_default():
    opts = parse_options({"steps": None, "guidance_scale": None, "octree_resolution": None, "num_chunks": None})
    assert (opts.steps, opts.guidance_scale, opts.octree_resolution, opts.num_chunks) == (None,) * 4


def test_valid_values_pass_through():
    opts = parse_options(
        {
            "generate_texture": False,
            "remove_background": False,
            "profile": 1,
            "seed": 0,
            "model": "draft",
            "max_faces": 1000,
            "steps": 5,
            "guidance_scale": 7,
            "octree_resolution": 64,
            "num_chunks": 1000,
        }
    )
    assert opts.guidance_scale == 7.0 and isinstance(opts.guidance_scale, float)
    assert opts.to_dict()["max_faces"] == 1000


def test_input_must_be_mapping():
    with pytest.raises(OptionsError, match="JSON object"):
        parse_options(["profile", 3])  # type: ignore[arg-type]


def test_error_sentences_stay_short():
    for raw in ({"model": "x" * 1_000_000}, {"x" * 1_000_000: 1}, {"seed": 10**400}):
        with pytest.raises(OptionsError) as info:
            parse_options(raw)
        assert len(str(info.value)) < 400


@pytest.mark.parametrize("value", ["bogus", "Draft"])
def test_bad_env_model(monkeypatch, value):
    monkeypatch.setenv("HY3D_MODEL", value)
    with pytest.raises(OptionsError, match="HY3D_MODEL"):
        load_settings()


def test_each_default_and_rule_is_written_once_on_the_dataclass():
    """FIELDS is built from GenerationOptions' own fields: type, default and rules."""
    import dataclasses

    from pipeline.options import FIELDS_BY_NAME
    from pipeline.settings import Settings

    fields = dataclasses.fields(GenerationOptions)
    assert [spec.name for spec in FIELDS] == [f.name for f in fields]
    for field in fields:
        spec = FIELDS_BY_NAME[field.name]
        assert spec.doc == field.metadata["hy3d_rules"].doc
        assert spec.default_for(Settings()) == field.default, field.name
    assert (FIELDS_BY_NAME["steps"].kind, FIELDS_BY_NAME["steps"].nullable) == (int, True)
    assert (FIELDS_BY_NAME["guidance_scale"].kind, FIELDS_BY_NAME["seed"].nullable) == (float, False)
    # The settings-dependent defaults follow the loaded settings (env HY3D_PROFILE, HY3D_MODEL).
    custom = Settings(default_profile=5, default_model="draft")
    assert (FIELDS_BY_NAME["profile"].default_for(custom), FIELDS_BY_NAME["model"].default_for(custom)) == (5, "draft")


def test_bounds_are_the_widgets_range():
    from pipeline.options import FIELDS_BY_NAME

    assert FIELDS_BY_NAME["profile"].bounds == (1, 5)
    assert FIELDS_BY_NAME["max_faces"].bounds == (1000, 500000)
    with pytest.raises(ValueError, match="Field 'model' has no range"):
        FIELDS_BY_NAME["model"].bounds  # noqa: B018 - the property is what is tested
