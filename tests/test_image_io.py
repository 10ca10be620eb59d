"""Decoding and validation of request images (pipeline.image_io)."""

from __future__ import annotations

import base64
import io
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from fakes.images import (
    RED,
    cmyk_jpeg,
    cutout_rgba,
    encode,
    exif_jpeg,
    noise_image,
    object_scene,
    palette_png_with_transparency,
    png16_gray,
    png_header_only,
    to_base64,
    two_tone,
)
from pipeline import image_io
from pipeline.errors import ImageError, InputError
from pipeline.image_io import decode_base64_image, encode_png, from_pil, has_real_transparency, load_image
from pipeline.settings import Settings

SETTINGS = Settings()


def close(pixel, expected, tol=6) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected, strict=False))


# --- formats and modes -------------------------------------------------------


@pytest.mark.parametrize(
    "cmyk, rgb",
    [
        ((0, 255, 255, 0), (255, 0, 0)),
        ((255, 0, 0, 0), (0, 255, 255)),
        ((0, 0, 0, 255), (0, 0, 0)),
        ((0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_cmyk_jpeg_adobe_inverted_maps_to_rgb(cmyk, rgb):
    data = cmyk_jpeg(cmyk)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK" and "adobe" in raw.info  # the inverted Adobe flavour
    img = load_image(data, SETTINGS)
    assert img.mode == "RGBA"
    assert close(img.getpixel((8, 8)), (*rgb, 255), tol=8)


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535, 1000, 65280]], np.uint16)
    img = load_image(png16_gray(values), SETTINGS)
    assert img.mode == "RGBA"
    gray = np.asarray(img)[0, :, 0]
    np.testing.assert_array_equal(gray, np.round(values[0].astype(np.int64) * 255 / 65535).astype(np.uint8))
    rgb = np.asarray(img)[0, :, :3]
    assert (rgb == rgb[:, :1]).all()  # gray stays neutral
    assert (np.asarray(img)[..., 3] == 255).all()


def test_palette_png_transparency_becomes_alpha():
    data, opaque = palette_png_with_transparency((8, 6))
    img = load_image(data, SETTINGS)
    alpha = np.asarray(img)[..., 3]
    np.testing.assert_array_equal(alpha, np.where(opaque, 255, 0))
    assert img.getpixel((7, 0))[:3] == (255, 0, 0)
    assert has_real_transparency(img)


def test_grayscale_l_and_la():
    img = load_image(encode(Image.new("L", (5, 4), 77), "PNG"), SETTINGS)
    assert img.mode == "RGBA" and img.getpixel((2, 2)) == (77, 77, 77, 255)

    la = Image.new("LA", (5, 4), (200, 255))
    la.putpixel((0, 0), (10, 0))
    img = load_image(encode(la, "PNG"), SETTINGS)
    assert img.getpixel((0, 0))[3] == 0
    assert img.getpixel((4, 3)) == (200, 200, 200, 255)


def test_grayscale_transparency_key_becomes_alpha():
    gray = Image.new("L", (4, 4), 100)
    gray.putpixel((1, 1), 7)
    img = load_image(encode(gray, "PNG", transparency=7), SETTINGS)
    assert img.getpixel((1, 1))[3] == 0 and img.getpixel((0, 0)) == (100, 100, 100, 255)


@pytest.mark.parametrize(
    "orientation, top, bottom",
    [
        (6, (255, 0, 0), (0, 0, 255)),  # 90° clockwise: the left (red) half ends up on top
        (8, (0, 0, 255), (255, 0, 0)),  # 90° counter-clockwise: red ends up at the bottom
    ],
)
def test_exif_orientation_is_applied(orientation, top, bottom):
    img = load_image(exif_jpeg(two_tone((40, 20)), orientation), SETTINGS)
    assert img.size == (20, 40)
    assert close(img.getpixel((10, 3)), (*top, 255))
    assert close(img.getpixel((10, 36)), (*bottom, 255))
    assert "exif" not in img.info  # nothing left for later code to rotate again


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_one_pixel_images_decode(fmt):
    img = load_image(encode(Image.new("RGB", (1, 1), (10, 200, 30)), fmt), SETTINGS)
    assert img.size == (1, 1) and img.mode == "RGBA"
    assert close(img.getpixel((0, 0)), (10, 200, 30, 255), tol=12)


def test_multi_picture_jpeg_uses_its_first_picture():
    # Phone cameras write MPO: a JPEG followed by more pictures; Pillow names it "MPO".
    first, second = Image.new("RGB", (20, 10), (200, 10, 10)), Image.new("RGB", (20, 10), (10, 10, 200))
    img = load_image(encode(first, "MPO", save_all=True, append_images=[second]), SETTINGS)
    assert img.size == (20, 10) and close(img.getpixel((5, 5)), (200, 10, 10, 255))


def test_webp_keeps_alpha():
    img = load_image(encode(cutout_rgba(object_scene((64, 64))), "WEBP", lossless=True), SETTINGS)
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((32, 32)) == (*RED, 255)


# --- rejections ---------------------------------------------------------------


def test_non_image_bytes():
    with pytest.raises(ImageError) as err:
        load_image(b"%PDF-1.7 definitely not a picture", SETTINGS)
    assert str(err.value) == "Field 'image' is not a PNG, JPEG or WebP image."
    assert isinstance(err.value, InputError)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_rejected_by_name(fmt):
    with pytest.raises(ImageError, match=f"is a {fmt} image; only PNG, JPEG and WebP"):
        load_image(encode(noise_image((16, 16)), fmt), SETTINGS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_rejected(fmt):
    data = encode(noise_image((128, 128)), fmt)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2], SETTINGS)


def test_truncation_stays_strict_when_a_library_relaxed_pillow(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(noise_image((128, 128)), "JPEG")
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) // 2], SETTINGS)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it


def test_decompression_bomb_is_rejected_from_the_header():
    data = png_header_only(50000, 50000)
    assert len(data) < 200
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageError) as err:
            load_image(data, SETTINGS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 10 * 1024 * 1024  # decoding would need 7.5 GB
    message = str(err.value)
    assert "2500000000 pixels" in message and str(SETTINGS.max_image_pixels) in message
    assert "HY3D_MAX_IMAGE_PIXELS" in message


def test_pixel_limit_uses_settings_before_decoding(monkeypatch):
    before = Image.MAX_IMAGE_PIXELS
    loads = []
    monkeypatch.setattr(image_io, "_decode_pixels", lambda img, settings, *_: loads.append(img) or img)
    with pytest.raises(ImageError, match=r"5000x5000 = 25000000 pixels; the limit is 16777216"):
        load_image(png_header_only(5000, 5000), SETTINGS)
    assert loads == []  # refused from the header, never decompressed
    assert Image.MAX_IMAGE_PIXELS == before

    small = Settings(max_image_pixels=100)
    assert load_image(encode(Image.new("RGB", (10, 10)), "PNG"), small).size == (10, 10)
    with pytest.raises(ImageError, match="110 pixels; the limit is 100"):
        load_image(encode(Image.new("RGB", (11, 10)), "PNG"), small)


def test_pillow_bomb_warning_becomes_image_error_when_fatal(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000, errors above 2000
    data = encode(Image.new("RGB", (40, 40)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="1600 pixels.*HY3D_MAX_IMAGE_PIXELS"):
            load_image(data, Settings(max_image_pixels=10**9))


def test_oversize_bytes_name_size_limit_and_variable():
    with pytest.raises(ImageError) as err:
        load_image(b"\x89PNG" + bytes(2000), Settings(max_image_bytes=1000))
    assert "2004 bytes" in str(err.value) and "1000 bytes" in str(err.value)
    assert "HY3D_MAX_IMAGE_BYTES" in str(err.value)


# --- base64 --------------------------------------------------------------------


def test_base64_size_is_checked_before_decoding(monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded an oversized payload")

    monkeypatch.setattr(image_io.base64, "b64decode", no_decode)
    settings = Settings(max_image_bytes=1000)
    exact = base64.b64encode(bytes(1001)).decode()
    with pytest.raises(ImageError, match=r"is 1001 bytes .*limit is 1000 bytes.*HY3D_MAX_IMAGE_BYTES"):
        decode_base64_image(exact, settings)

    huge = "A" * (64 * 1024 * 1024)
    started = time.perf_counter()
    with pytest.raises(ImageError, match="HY3D_MAX_IMAGE_BYTES"):
        decode_base64_image(huge, settings)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("text", ["not base64!!", "QUJD*RA==", "QUJDR"])
def test_bad_base64(text):
    with pytest.raises(ImageError, match="Field 'image' is not valid base64"):
        decode_base64_image(text, SETTINGS)


def test_empty_and_non_string_payloads():
    with pytest.raises(ImageError, match="empty"):
        decode_base64_image(" \n ", SETTINGS)
    with pytest.raises(ImageError, match="must be a base64 string, got int"):
        decode_base64_image(123, SETTINGS)  # type: ignore[arg-type]


def test_data_url_prefix_and_line_breaks():
    png = encode(object_scene((32, 32)).image, "PNG")
    for text in (
        to_base64(png, data_url="image/png"),
        to_base64(png, data_url="image/png", wrap=76),
        "  " + to_base64(png, wrap=60).replace("\n", "\r\n") + "\n",
        base64.urlsafe_b64encode(png).decode().rstrip("="),
    ):
        img = decode_base64_image(text, SETTINGS)
        assert img.size == (32, 32) and img.getpixel((16, 16)) == (*RED, 255)


def test_data_url_must_be_base64_image():
    with pytest.raises(ImageError, match="without ';base64'"):
        decode_base64_image("data:image/png,abcd", SETTINGS)
    with pytest.raises(ImageError, match="'text/plain', not an image"):
        decode_base64_image("data:text/plain;base64,QUJD", SETTINGS)


def test_base64_of_a_gif_is_rejected_by_name():
    with pytest.raises(ImageError, match="GIF"):
        decode_base64_image(to_base64(encode(noise_image((8, 8)), "GIF")), SETTINGS)


# --- transparency and helpers ----------------------------------------------------


def test_has_real_transparency():
    scene = object_scene((100, 100))
    assert not has_real_transparency(scene.image)  # RGB
    assert not has_real_transparency(scene.image.convert("RGBA"))  # Gradio-style opaque RGBA
    assert has_real_transparency(cutout_rgba(scene))

    speckled = scene.image.convert("RGBA")
    for x in range(5):  # 5 of 10 000 pixels: below the 0.1% share
        speckled.putpixel((x, 0), (255, 255, 255, 0))
    assert not has_real_transparency(speckled)
    nearly_opaque = scene.image.convert("RGBA")
    nearly_opaque.putalpha(252)  # soft everywhere but above the threshold
    assert not has_real_transparency(nearly_opaque)


def test_from_pil_normalises_without_byte_limit():
    palette = Image.new("P", (30, 20), 0)
    img = from_pil(palette, Settings(max_image_bytes=1))
    assert img.mode == "RGBA" and img.size == (30, 20)
    with pytest.raises(ImageError, match="HY3D_MAX_IMAGE_PIXELS"):
        from_pil(Image.new("RGB", (30, 20)), Settings(max_image_pixels=500))


def test_encode_png_round_trips_alpha():
    cut = cutout_rgba(object_scene((48, 48)))
    back = load_image(encode_png(cut), SETTINGS)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(cut))
