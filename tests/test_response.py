"""The response wire format's one definition (pipeline/response.py): what the worker
writes, what the remote client reads back, what the README documents."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pipeline.options import GenerationOptions
from pipeline.response import ErrorResponse, Response, ResultSummary, from_response, summary, to_response
from pipeline.runpod.delivery import Delivery
from pipeline.types import GenerationResult

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
GLB = b"glTF" + b"\1" * 60


def result(**changes) -> GenerationResult:
    values = {
        "glb": GLB,
        "textured": True,
        "model": "hunyuan3d-2",
        "seed": 7,
        "profile": 4,
        "faces": 1200,
        "vertices": 640,
        "timings": {"shape": 1.5, "texture": 2.25},
        "warnings": ["a warning"],
        "execution_time": 4.0,
        "texture_rasterizer": "torch",
        "preview_png": PNG,
    }
    return GenerationResult(**{**values, **changes})


def keys(typed_dict) -> set[str]:
    return set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)


def test_required_and_optional_fields_are_what_the_worker_omits_or_not():
    assert Response.__optional_keys__ == {
        "model_base64",
        "model_url",
        "model_url_expires_at",
        "preview_png_base64",
        "refresh_worker",
    }
    assert set(ResultSummary.__required_keys__) < set(Response.__required_keys__)
    assert set(ErrorResponse.__required_keys__) == {"error"}


def test_inline_response_has_exactly_the_defined_fields():
    response = to_response(result(), Delivery(GLB, "inline", warnings=["shrunk"]))
    assert set(response) == Response.__required_keys__ | {"model_base64", "preview_png_base64"}
    assert next(iter(response)) == "model_base64"  # where the GLB is comes first, as before
    assert base64.b64decode(response["model_base64"]) == GLB and response["file_size"] == len(GLB)
    assert response["warnings"] == ["a warning", "shrunk"] and response["format"] == "glb"


def test_url_response_and_refresh_worker():
    delivery = Delivery(GLB, "url", model_url="http://127.0.0.1:9/m.glb", expires_at="2026-12-08T00:00:00+00:00")
    response = to_response(result(preview_png=None, refresh_worker=True), delivery)
    assert set(response) == Response.__required_keys__ | {"model_url", "model_url_expires_at", "refresh_worker"}
    assert list(response)[:2] == ["model_url", "model_url_expires_at"] and response["output"] == "url"
    assert response["refresh_worker"] is True


def test_reading_a_response_back_gives_the_same_result():
    original = result()
    response = to_response(original, Delivery(GLB, "inline"))
    options = GenerationOptions(model="auto")
    back = from_response(dict(response), GLB, options, {"remote.round_trip": 5.0})
    for name in ResultSummary.__required_keys__ - {"timings", "file_size"}:
        assert getattr(back, name) == getattr(original, name), name
    assert back.timings == {**original.timings, "remote.round_trip": 5.0}
    assert back.texture_rasterizer == "torch" and back.preview_png == PNG and back.options == options.to_dict()


def test_reading_a_sparse_response_falls_back_to_the_request():
    back = from_response({"preview_png_base64": "not base64!"}, GLB, GenerationOptions(seed=99, model="draft"), {})
    assert (back.model, back.seed, back.faces, back.textured, back.preview_png) == ("draft", 99, 0, False, None)


def test_the_apps_stats_are_the_result_summary():
    stats = summary(result())
    assert set(stats) == set(ResultSummary.__required_keys__)
    assert stats["file_size"] == len(GLB) and stats["warnings"] == ["a warning"]


def _readme_response_fields() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("### Response", 1)[1].split("\n\n", 2)[1]
    names: set[str] = set()
    for row in table.splitlines()[2:]:
        names |= set(re.findall(r"`([a-z_0-9]+)`", row.split("|")[1]))
    return names


def test_readme_response_table_matches_the_definition():
    assert _readme_response_fields() == keys(Response)


@pytest.mark.parametrize("method", ["inline", "url"])
def test_delivery_method_is_the_output_field(method):
    delivery = Delivery(GLB, method, model_url="http://127.0.0.1:9/m.glb", expires_at="t")
    assert to_response(result(), delivery)["output"] == method
