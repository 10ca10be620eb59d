"""The ``views`` request field: extra pictures of the subject for the
multi-view models (``image`` stays the front view).

Only the shape of the field is checked here (an object whose keys are some of
``left``, ``back``, ``right``); each picture is decoded by :mod:`pipeline.image_io`
exactly as ``image`` is, under the field name ``views.<key>``, so its errors
name the view. No heavy imports: the faces call this before any model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import OptionsError
from .models import AUTO, HUNYUAN_MODELS, MULTIVIEW_MODELS, VIEW_NAMES

FIELD = "views"


def view_field(view: str) -> str:
    """The name a view's errors use: ``views.left``."""
    return f"{FIELD}.{view}"


def check_views(raw: Any) -> dict[str, Any]:
    """``views`` as a plain dict in hy3dgen's view order, without nulls.

    Absent, null and ``{}`` all mean "no extra views". A key other than
    left/back/right is an error naming the allowed keys; a null value (an
    empty slot of a form) is the same as leaving the key out.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise OptionsError(
            f"Field '{FIELD}' must be an object with any of the keys {', '.join(VIEW_NAMES)}, "
            f"got a value of type {type(raw).__name__}."
        )
    unknown = sorted(str(key) for key in raw if key not in VIEW_NAMES)
    if unknown:
        name = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:37] + "..."
        raise OptionsError(
            f"Field '{FIELD}' has the unknown view '{name}'; allowed views are {', '.join(VIEW_NAMES)} "
            "('image' is the front)."
        )
    return {view: raw[view] for view in VIEW_NAMES if raw.get(view) is not None}


def require_multiview(model: str, views: Mapping[str, Any]) -> None:
    """Views need a multi-view model: any other named model is an error that
    names the ones that take them. ``auto`` is resolved later, by views."""
    if not views or model == AUTO:
        return
    spec = HUNYUAN_MODELS.get(model)
    if spec is not None and spec.multiview:
        return
    raise OptionsError(
        f"Field '{FIELD}' needs a multi-view model ({', '.join(MULTIVIEW_MODELS)}, or auto); "
        f"'{model}' takes a single image."
    )
