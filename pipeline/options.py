"""The single options schema shared by the worker and the Gradio app.

Each face translates its own wire format (RunPod JSON, Gradio widgets) into a
plain mapping and calls :func:`parse_options`. Validation is strict on purpose:
JSON ``true`` is not an integer, ``1`` is not a boolean, and an unknown field is
an error, so a typo in the After Effects panel is caught instead of ignored.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import OptionsError, echo
from .models import DEFAULT_PAINT_MODEL, MODEL_CHOICES, PAINT_MODELS, TEXTURE_SIZES
from .settings import Settings, load_settings

_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class FieldSpec:
    """One request field: its type, default, allowed values and documentation."""

    name: str
    kind: type
    default: Any | Callable[[Settings], Any]
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    nullable: bool = False  # null means "use the model's own default"

    @property
    def bounds(self) -> tuple[float, float]:
        """(minimum, maximum), for a field that has both: a slider's range."""
        if self.minimum is None or self.maximum is None:
            raise ValueError(f"Field '{self.name}' has no range.")
        return self.minimum, self.maximum

    def default_for(self, settings: Settings) -> Any:
        return self.default(settings) if callable(self.default) else self.default

    def rule(self) -> str:
        """Human-readable rule, used in error messages and the README."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = _TYPE_NAMES[self.kind]
        if self.minimum is not None and self.maximum is not None:
            text += f" from {_fmt(self.minimum)} to {_fmt(self.maximum)}"
        elif self.minimum is not None:
            text += f" of at least {_fmt(self.minimum)}"
        return text

    def validate(self, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        if not _has_type(value, self.kind):
            raise OptionsError(f"Field '{self.name}' must be {self.rule()}, got {_describe(value)}.")
        if self.kind is float:
            try:
                value = float(value)
            except OverflowError:  # a JSON integer with hundreds of digits
                raise OptionsError(f"Field '{self.name}' must be {self.rule()}, got a number out of range.") from None
            if not math.isfinite(value):
                raise OptionsError(f"Field '{self.name}' must be a finite number, got {echo(value)}.")
        if self.choices is not None and value not in self.choices:
            raise OptionsError(f"Field '{self.name}' must be {self.rule()}, got {_describe(value)}.")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise OptionsError(f"Field '{self.name}' must be {self.rule()}, got {_fmt(value)}.")
        return value


def _fmt(number: float) -> str:
    """Integers as written (never via float, which overflows), by size when huge."""
    if isinstance(number, int) or float(number).is_integer():
        return echo(int(number))
    return echo(number)


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {echo(value)}"
    if isinstance(value, (int, float)):
        return f"the number {echo(value)}"
    return f"a value of type {type(value).__name__}"


@dataclass(frozen=True)
class _Rules:
    """A request field's schema, carried in its dataclass field's ``metadata``."""

    doc: str
    setting: str | None = None  # the Settings attribute whose value is the default (env HY3D_MODEL, HY3D_PROFILE)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None


_RULES = "hy3d_rules"


def _option(default: Any, doc: str, *, setting: str | None = None, **rules: Any) -> Any:
    """A :class:`GenerationOptions` field that also carries its :class:`FieldSpec`'s rules.

    ``default`` is written here only; with ``setting``, it is the
    :class:`Settings` attribute's own default, and ``parse_options`` reads the
    loaded settings instead. Returns ``dataclasses.field``'s value, typed Any
    as ``field`` itself is, so the annotation stays the field's static type."""
    return dataclasses.field(default=default, metadata={_RULES: _Rules(doc, setting, **rules)})


@dataclass(frozen=True)
class GenerationOptions:
    """Validated options of one generation request (everything but the image).

    Each field's type, default and rules are the request schema: :data:`FIELDS`
    is built from these, so a default or a range is written once."""

    generate_texture: bool = _option(True, "Paint a texture onto the mesh.")
    remove_background: bool = _option(
        True, "Cut the subject out with rembg first; skipped when the image already has real transparency."
    )
    profile: int = _option(
        Settings.default_profile,
        "mmgp memory profile, 1 (fastest, most VRAM) to 5 (least VRAM). Default: env HY3D_PROFILE, else 3.",
        setting="default_profile",
        minimum=1,
        maximum=5,
    )
    seed: int = _option(1234, "Random seed; the same seed gives the same model.", minimum=0, maximum=2**32 - 1)
    model: str = _option(
        Settings.default_model,
        "Shape model. Default: env HY3D_MODEL, else auto (best Hunyuan3D variant present, else draft).",
        setting="default_model",
        choices=MODEL_CHOICES,
    )
    max_faces: int = _option(40000, "Face budget of the output mesh.", minimum=1000, maximum=500000)
    steps: int | None = _option(
        None,
        "Diffusion steps (Hunyuan3D only). Default: the model's own (30, or 5 for turbo).",
        minimum=1,
        maximum=100,
    )
    guidance_scale: float | None = _option(
        None, "Classifier-free guidance (Hunyuan3D only). Default: 5.0.", minimum=0.0, maximum=20.0
    )
    octree_resolution: int | None = _option(
        None, "Surface-extraction grid resolution (Hunyuan3D only). Default: 256.", minimum=64, maximum=512
    )
    num_chunks: int | None = _option(
        None,
        "Grid points decoded per batch (Hunyuan3D only); lower uses less VRAM. Default: 8000.",
        minimum=1000,
        maximum=500000,
    )
    texture_size: int = _option(2048, "Texture atlas size in pixels (Hunyuan3D texturing).", choices=TEXTURE_SIZES)
    paint_model: str = _option(
        DEFAULT_PAINT_MODEL,
        "Texture paint model (Hunyuan3D texturing); -turbo runs hy3dgen 2.0.2's standard sampler.",
        choices=PAINT_MODELS,
    )
    smooth_normals: bool = _option(
        True,
        "Write smooth vertex normals (+12 bytes a vertex, about 0.3 MB at 40k faces). Off, viewers shade flat, "
        "as the glTF spec requires for GLBs without normals (hy3dgen's own have none).",
    )
    output: str = _option(
        "auto",
        "How the GLB comes back: inline (base64 only), url (bucket upload), auto (inline under the budget).",
        choices=("auto", "inline", "url"),
    )
    preview: bool = _option(
        False,
        "Add preview_png_base64: a 512x512 PNG of the final model (three-quarter front view, transparent "
        "background), rendered on the CPU; off by default to keep payloads small.",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> GenerationOptions:
        return dataclasses.replace(self, **changes)


def _spec(field: dataclasses.Field, hint: Any) -> FieldSpec:
    """The :class:`FieldSpec` of one :class:`GenerationOptions` field: kind and
    nullability from its annotation (``int | None``: an int or null), the rest
    from its :func:`_option` rules."""
    kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    if len(kinds) != 1:
        raise TypeError(f"GenerationOptions.{field.name} must be one type or that type | None, not {hint}.")
    rules: _Rules = field.metadata[_RULES]
    default = operator.attrgetter(rules.setting) if rules.setting else field.default
    return FieldSpec(
        field.name,
        kinds[0],
        default,
        rules.doc,
        minimum=rules.minimum,
        maximum=rules.maximum,
        choices=rules.choices,
        nullable=len(kinds) < len(typing.get_args(hint)),
    )


_HINTS = typing.get_type_hints(GenerationOptions)
FIELDS: tuple[FieldSpec, ...] = tuple(_spec(f, _HINTS[f.name]) for f in dataclasses.fields(GenerationOptions))
FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def parse_options(
    raw: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    ignore: tuple[str, ...] = (),
) -> GenerationOptions:
    """Validate a mapping of request fields into :class:`GenerationOptions`.

    ``ignore`` names fields the caller handles itself (the worker's ``image``),
    which are neither validated here nor reported as unknown.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise OptionsError("Request input must be a JSON object.")
    unknown = sorted((k for k in raw if k not in FIELDS_BY_NAME and k not in ignore), key=repr)
    if unknown:
        allowed = ", ".join(sorted((*FIELDS_BY_NAME, *ignore)))
        raise OptionsError(f"Unknown field {echo(unknown[0])}; allowed fields are: {allowed}.")
    settings = settings or load_settings()
    values = {}
    for spec in FIELDS:
        if spec.name in raw:
            values[spec.name] = spec.validate(raw[spec.name])
        else:
            values[spec.name] = spec.default_for(settings)
    return GenerationOptions(**values)
