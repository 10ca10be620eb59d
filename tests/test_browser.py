"""A real browser session: upload a picture, click Generate, see a rendered model.

Uses Debian's chromium through Playwright (never `playwright install`); WebGL
renders on SwiftShader, so the Model3D canvas shows real pixels.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fakes.images import make_subject_png
from fakes.servers import running_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium_path():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/run_tests.sh installs Debian's chromium")
        pytest.skip("Debian chromium is not installed")
    return CHROMIUM


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


def glb_attributes(glb: bytes) -> set[str]:
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    return {name for name, value in vars(gltf.meshes[0].primitives[0].attributes).items() if value is not None}


def test_upload_generate_and_see_the_model(app_url, chromium_path, tmp_path):
    import requests
    from playwright.sync_api import sync_playwright

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(384))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Not "networkidle": the history gallery's gr.State makes Gradio keep a heartbeat request open.
            page.goto(app_url, wait_until="load")
            page.locator("#generate-button").wait_for(state="visible", timeout=60_000)
            page.locator("#input-image input[type=file]").set_input_files(str(image))
            page.wait_for_timeout(500)
            # The backend model dropdown defaults to auto, which serves draft here (no weights).
            page.locator("#generate-button").click()
            page.wait_for_selector("#stats :text('Faces')", timeout=120_000)
            canvas = page.locator("#model-viewer canvas")
            canvas.wait_for(state="visible", timeout=30_000)
            page.wait_for_selector("#history-gallery img", timeout=30_000)
            page.wait_for_timeout(3000)  # let the viewer render a few frames
            shot = tmp_path / "model-viewer.png"
            canvas.screenshot(path=str(shot))
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            glb_href = page.locator("#glb-download a").first.get_attribute("href")
            preview_src = page.locator("#history-gallery img").first.get_attribute("src")
        finally:
            browser.close()

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    clear = np.array([round(0.92 * 255)] * 3)
    differs = np.abs(pixels - clear).sum(axis=-1) > 30
    share = differs.mean()
    assert share > 0.02, f"only {share:.3%} of the canvas differs from the clear colour ({shot})"
    # The model is red: a red-dominant region must be visible.
    red = (pixels[..., 0] > pixels[..., 1] + 40) & (pixels[..., 0] > pixels[..., 2] + 40)
    assert red.mean() > 0.005, f"no red model visible in {shot}"
    # What the viewer shows is the smooth result: the default GLB carries
    # normals, so glTF viewers shade it smooth. (Gradio's Babylon viewer showed
    # this ball alike with and without them, about 0.7 mean brightness step
    # between neighbouring pixels either way, so the screenshot alone cannot tell.)
    glb = requests.get(requests.compat.urljoin(app_url, glb_href), timeout=30).content
    assert glb[:4] == b"glTF" and "NORMAL" in glb_attributes(glb)
    # The history gallery shows this result's preview.
    with Image.open(io.BytesIO(requests.get(requests.compat.urljoin(app_url, preview_src), timeout=30).content)) as png:
        assert png.size == (512, 512) and png.mode in ("RGBA", "P")


def test_login_page_works_behind_the_auth_gate(chromium_path):
    """With HY3D_AUTH the guard serves the login page without the API
    description; a browser can still log in and reach the app."""
    from playwright.sync_api import sync_playwright

    with running_app(auth=("qa", "s3cret")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.locator("input[type=text]").fill("qa")
            page.locator("input[type=password]").fill("s3cret")
            page.get_by_role("button", name="Login").click()
            page.locator("#generate-button").wait_for(timeout=60_000)
            assert page.evaluate("Object.keys(window.gradio_api_info.named_endpoints)").count("/generate") == 1
        finally:
            browser.close()


def test_empty_advanced_boxes_stay_model_default_after_opening_the_accordion(app_url, chromium_path, tmp_path):
    """Opening "Advanced" renders its number boxes, and Gradio 6 renders an
    empty one as 0; they must stay empty (None = model default) so Generate
    succeeds with the draft model, and a value the user typed must survive
    closing and reopening."""
    from playwright.sync_api import sync_playwright

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(256))
    labels = ("Steps", "Guidance scale", "Octree resolution", "Num chunks")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url, wait_until="load")
            page.locator("#generate-button").wait_for(state="visible", timeout=60_000)
            page.locator("#input-image input[type=file]").set_input_files(str(image))
            accordion = page.get_by_text("Advanced (Hunyuan3D models")
            accordion.click()
            boxes = {label: page.get_by_label(label, exact=True) for label in labels}
            for box in boxes.values():
                box.wait_for(state="visible", timeout=30_000)
            page.wait_for_timeout(500)
            shown = {label: box.input_value() for label, box in boxes.items()}
            page.locator("#generate-button").click()
            page.wait_for_selector("#stats :text('Faces'), .toast-title:text('Error')", timeout=120_000)
            errors = page.locator(".toast-wrap:has(.toast-title:text('Error'))").all_inner_texts()
            stats = page.locator("#stats").inner_text()
            # A typed 0 (a valid guidance scale) is kept over closing and reopening; the others stay empty.
            boxes["Guidance scale"].fill("0")
            boxes["Guidance scale"].press("Tab")
            accordion.click()
            page.wait_for_timeout(500)
            accordion.click()
            boxes["Steps"].wait_for(state="visible", timeout=30_000)
            page.wait_for_timeout(500)
            reopened = {label: box.input_value() for label, box in boxes.items()}
        finally:
            browser.close()
    assert shown == {label: "" for label in labels}, shown
    assert not errors, errors
    assert "Faces" in stats and "draft" in stats, stats
    assert reopened == {**{label: "" for label in labels}, "Guidance scale": "0"}, reopened
