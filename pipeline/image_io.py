"""Decode and validate the request image.

Everything a client sends goes through here before any model sees it, so the
checks are ordered cheapest first: the base64 length before decoding, the
header's pixel count before decompressing, and only then a full decode. The
result is always an 8-bit RGBA image with EXIF orientation applied, whatever
the file's mode (palette, grayscale, 16-bit, CMYK).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import threading
from collections.abc import Iterator
from typing import cast

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError, echo
from .settings import Settings

# Pillow plugins we let parse request bytes. MPO is what Pillow calls a JPEG
# that carries extra pictures (many phone cameras); its first frame is a JPEG.
_OPEN_FORMATS = ("PNG", "JPEG", "WEBP")
_ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP"})
_NOT_AN_IMAGE = "Field '{field}' is not a PNG, JPEG or WebP image."

_DATA_URL = re.compile(r"^\s*data:([^,]*?),", re.IGNORECASE)
_DATA_URL_MAX = 256  # a media type longer than this is not one we accept
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
# Alpha below this counts as transparent; a share of at least
# _TRANSPARENT_SHARE of all pixels makes the transparency "real".
_ALPHA_THRESHOLD = 250
_TRANSPARENT_SHARE = 0.001

_truncation_lock = threading.Lock()


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"  # binary units, as HY3D_MAX_IMAGE_BYTES is documented


def _too_many_bytes(size: int, settings: Settings, *, estimated: bool = False, field: str = "image") -> ImageError:
    qualifier = "about " if estimated else ""
    return ImageError(
        f"Field '{field}' is {qualifier}{size} bytes ({_mb(size)}) after decoding; the limit is "
        f"{settings.max_image_bytes} bytes ({_mb(settings.max_image_bytes)}), "
        "set by HY3D_MAX_IMAGE_BYTES."
    )


def _too_many_pixels(pixels: int, size: tuple[int, int] | None, settings: Settings, field: str = "image") -> ImageError:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return ImageError(
        f"Field '{field}' is {dims}{pixels} pixels; the limit is {settings.max_image_pixels} "
        "pixels, set by HY3D_MAX_IMAGE_PIXELS."
    )


def _strip_data_url(data: str, field: str = "image") -> str:
    """Drop a ``data:image/...;base64,`` prefix; refuse data URLs that aren't base64."""
    match = _DATA_URL.match(data[:_DATA_URL_MAX])
    if match is None:
        return data
    params = [p.strip().lower() for p in match.group(1).split(";")]
    if "base64" not in params[1:]:
        raise ImageError(f"Field '{field}' is a data URL without ';base64'; send the image base64-encoded.")
    if params[0] and not params[0].startswith("image/"):
        raise ImageError(f"Field '{field}' is a data URL of type {echo(params[0])}, not an image.")
    return data[match.end() :]


def _decoded_size(b64_len: int, padding: int) -> int:
    return (b64_len // 4) * 3 - padding


def decode_base64_image(data: str, settings: Settings, field: str = "image") -> Image.Image:
    """Decode the request's base64 ``image`` field into an RGBA image.

    The size limit is checked from the base64 length first, so an oversized
    payload is refused without allocating its decoded bytes.
    """
    if not isinstance(data, str):
        raise ImageError(f"Field '{field}' must be a base64 string, got {type(data).__name__}.")
    payload = _strip_data_url(data, field)
    # Cheap bound before any copy: base64 turns 3 bytes into 4 characters, and
    # line breaks add at most a few percent, so twice the encoded limit is
    # generous; anything longer cannot fit whatever its whitespace.
    if len(payload) > 2 * (4 * settings.max_image_bytes // 3 + 4):
        raise _too_many_bytes(len(payload) * 3 // 4, settings, estimated=True, field=field)
    compact = "".join(payload.split())
    if not compact:
        raise ImageError(f"Field '{field}' is empty.")
    # Tolerate URL-safe alphabet and missing padding, both common in clients.
    compact = compact.replace("-", "+").replace("_", "/")
    if len(compact) % 4 == 1:
        raise ImageError(f"Field '{field}' is not valid base64: its length is impossible for base64.")
    compact += "=" * (-len(compact) % 4)
    size = _decoded_size(len(compact), len(compact) - len(compact.rstrip("=")))
    if size > settings.max_image_bytes:
        raise _too_many_bytes(size, settings, field=field)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"Field '{field}' is not valid base64: {exc}.") from None
    return load_image(raw, settings, field)


def _detected_format(data: bytes) -> str | None:
    """Name the format of bytes we refuse, so the error can say what was sent."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # noqa: BLE001 - any failure just means "unknown"
        return None


def _bomb_error(exc: Exception, settings: Settings, field: str = "image") -> ImageError:
    match = _BOMB_PIXELS.search(str(exc))
    if match:
        return _too_many_pixels(int(match.group(1)), None, settings, field)
    return ImageError(
        f"Field '{field}' is too large to decode ({exc}); the limit is "
        f"{settings.max_image_pixels} pixels, set by HY3D_MAX_IMAGE_PIXELS."
    )


def _open_header(data: bytes, settings: Settings, field: str = "image") -> Image.Image:
    """Parse only the header with one of our three plugins and check the format."""
    try:
        img = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    # Pillow's own cap (a global we leave alone) fires inside open(); its
    # warning is an exception only where warnings were made errors.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc, settings, field) from None
    except UnidentifiedImageError:
        fmt = _detected_format(data)
        if fmt:
            raise ImageError(f"Field '{field}' is a {fmt} image; only PNG, JPEG and WebP are accepted.") from None
        raise ImageError(_NOT_AN_IMAGE.format(field=field)) from None
    except Exception as exc:  # noqa: BLE001 - a plugin accepted the signature but the header is broken
        raise ImageError(f"Field '{field}' has a corrupt header: {exc}.") from None
    if img.format not in _ACCEPTED_FORMATS:  # defensive: formats= already restricts
        raise ImageError(f"Field '{field}' is a {img.format} image; only PNG, JPEG and WebP are accepted.")
    return img


@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """Make Pillow raise on truncated files even if a library enabled leniency.

    ``LOAD_TRUNCATED_IMAGES`` is process-global; it is only touched (under a
    lock, and restored) when someone else has switched it on.
    """
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _truncation_lock:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _decode_pixels(img: Image.Image, settings: Settings, field: str = "image") -> Image.Image:
    try:
        with _strict_truncation():
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc, settings, field) from None
    except MemoryError:
        raise ImageError(f"Field '{field}' could not be decoded: not enough memory.") from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure is the same user error
        raise ImageError(f"Field '{field}' is truncated or corrupt ({img.format}): {exc}.") from None
    return img


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Rotate as the camera intended; a broken EXIF block must not reject the photo."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block keeps the pixels as stored
        return img


def _sixteen_bit_to_rgba(img: Image.Image) -> Image.Image:
    """Scale 16-bit grayscale (``I;16*``/``I``) to 8 bits by 255/65535, not by clipping."""
    values = np.asarray(img).astype(np.int64)
    transparent_key = img.info.get("transparency")
    gray = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
    alpha = np.full(values.shape, 255, dtype=np.uint8)
    if isinstance(transparent_key, int):
        alpha[values == transparent_key] = 0
    gray8 = gray.astype(np.uint8)
    return Image.fromarray(np.dstack([gray8, gray8, gray8, alpha]), mode="RGBA")


def _cmyk_to_rgba(img: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one; Pillow's formula otherwise.

    Pillow already undoes Adobe's inverted CMYK when reading the JPEG.
    """
    icc = img.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if rgb is not None:
                return rgb.convert("RGBA")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return img.convert("RGB").convert("RGBA")


def to_rgba(img: Image.Image, field: str = "image") -> Image.Image:
    """Convert any decoded mode to 8-bit RGBA, keeping real transparency."""
    mode = img.mode
    if mode == "RGBA":
        return img.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _sixteen_bit_to_rgba(img)
    if mode == "CMYK":
        return _cmyk_to_rgba(img)
    if mode in ("RGB", "L", "LA", "P", "PA", "1", "La", "RGBa", "RGBX"):
        # Pillow maps palette/grayscale/RGB transparency keys (tRNS) to alpha.
        return img.convert("RGBA")
    try:
        return img.convert("RGB").convert("RGBA")
    except ValueError:
        raise ImageError(f"Field '{field}' uses the unsupported colour mode {mode}.") from None


def from_pil(img: Image.Image, settings: Settings, field: str = "image") -> Image.Image:
    """Validate and normalise an already-decoded image (the Gradio app's input).

    Applies the pixel limit, EXIF orientation and RGBA conversion of
    :func:`load_image` without re-encoding, so the byte limit (meant for
    request payloads) cannot reject a photo whose PNG re-encoding is larger.
    """
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"Field '{field}' is an empty canvas ({width}x{height}).")
    if width * height > settings.max_image_pixels:
        raise _too_many_pixels(width * height, img.size, settings, field)
    rgba = to_rgba(_apply_orientation(img), field)
    rgba.info.clear()
    return rgba


def load_image(data: bytes, settings: Settings, field: str = "image") -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into an upright 8-bit RGBA image.

    The pixel limit is checked against the header before the pixels are
    decompressed, so a small file declaring a huge canvas costs nothing.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"Field '{field}' must be bytes, got {type(data).__name__}.")
    data = bytes(data)
    if not data:
        raise ImageError(f"Field '{field}' is empty.")
    if len(data) > settings.max_image_bytes:
        raise _too_many_bytes(len(data), settings, field=field)
    img = _open_header(data, settings, field)
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"Field '{field}' declares an empty canvas ({width}x{height}).")
    if width * height > settings.max_image_pixels:
        raise _too_many_pixels(width * height, img.size, settings, field)
    img = _decode_pixels(img, settings, field)
    rgba = to_rgba(_apply_orientation(img), field)
    rgba.info.clear()  # orientation is applied; later EXIF-aware code must not rotate again
    return rgba


def has_real_transparency(img: Image.Image) -> bool:
    """True when a meaningful share of pixels is see-through.

    Gradio hands every upload over as RGBA with alpha 255, so the mode says
    nothing; the alpha values do. A few stray soft pixels don't count.
    """
    if "A" not in img.getbands() and "transparency" not in img.info:
        return False
    alpha = img.getchannel("A") if "A" in img.getbands() else img.convert("RGBA").getchannel("A")
    # One band gives (min, max); the stubs type every mode's extrema at once.
    low, _ = cast("tuple[int, int]", alpha.getextrema())
    if low >= _ALPHA_THRESHOLD:
        return False
    below = sum(alpha.histogram()[:_ALPHA_THRESHOLD])
    total = img.width * img.height
    return below >= max(1, total * _TRANSPARENT_SHARE)


def encode_png(img: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes of ``img``: lossless and keeps alpha. Level 1 by default because
    this sits on request paths, where a 4K image at level 6 takes seconds."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def largest_component(mask: np.ndarray) -> np.ndarray:
    """``mask`` (uint8, any "on" value) with only its largest 8-connected
    foreground component kept; shared by the cutout and the draft backend,
    which both drop stray specks."""
    import cv2  # deferred: image decoding alone should not pay for OpenCV

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:  # no foreground, or a single component: nothing to drop
        return mask
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return mask * (labels == biggest).astype(mask.dtype)
