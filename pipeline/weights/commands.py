"""How every fix is spelled: the weights CLI's download command, for each variant.

Error messages, warnings, ``check``'s hints and the README all name the same
command; building it here means a renamed flag changes one line. Pure strings,
no imports, so every module (and the Docker weights layer) can use it.
"""

from __future__ import annotations

CLI = "python -m pipeline.weights"


def download_command(model: str | None = None, *, texture: bool = False, rembg: bool = False) -> str:
    """``python -m pipeline.weights download`` with ``--model NAME``, ``--texture`` and
    ``--rembg`` as asked; with none of them, the bare command."""
    parts = [CLI, "download"]
    if model:
        parts += ["--model", model]
    if texture:
        parts.append("--texture")
    if rembg:
        parts.append("--rembg")
    return " ".join(parts)


TEXTURE_DOWNLOAD_COMMAND = download_command(texture=True)
REMBG_DOWNLOAD_COMMAND = download_command(rembg=True)
