"""Downloading what is missing: the plan, huggingface_hub's timeouts, and the fetch itself.

Only the needed subfolders are fetched (``allow_patterns``), and each is
checked for completeness afterwards, so a partial download never counts as
present. A download fails fast instead of hanging: at once under
``HF_HUB_OFFLINE`` or when the hub's name does not resolve, after the timeout
when a silent proxy never answers (hy3dgen's own ``snapshot_download`` call
can otherwise wait for many minutes).
"""

from __future__ import annotations

import math
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionsError, PipelineError
from ..models import HUNYUAN_MODELS
from ..settings import env_seconds
from .assets import TEXTURE_REPO, TEXTURE_SUBFOLDERS, rembg_model_path
from .folders import diffusers_folder_complete, find_folder, find_shape_folder, inspect_shape_folder
from .roots import hf_hub_cache, hy3dgen_root
from .shape import model_folders
from .verify import write_manifest

DEFAULT_TIMEOUT_S = 15.0
# huggingface_hub's two timeouts: the wait for the hub's first answer, and for each read.
HUB_TIMEOUT_VARIABLES = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


class DownloadError(PipelineError):
    """A download could not start or did not finish; nothing was left that counts as present."""


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def require_network(url: str, timeout: float) -> None:
    """Fail within ``timeout`` when ``url`` cannot be reached (DNS, firewall,
    silent proxy), instead of letting a download hang."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered: the network works
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        # "within N s" only when the wait ran out; a failed name lookup fails at once.
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        when = f" within {timeout:g} s" if timed_out else ""
        raise DownloadError(f"Cannot reach {url}{when} ({reason}); check the network or proxy.") from None


@dataclass(frozen=True)
class DownloadPlan:
    """Subfolders to fetch per repository (those not already present), and rembg."""

    repos: dict[str, list[str]]
    rembg: str | None

    @property
    def empty(self) -> bool:
        return not self.repos and self.rembg is None


def _shape_present(repo_id: str, subfolder: str) -> bool:
    return find_shape_folder(repo_id, subfolder) is not None


def _texture_present(repo_id: str, subfolder: str) -> bool:
    return find_folder(repo_id, subfolder, diffusers_folder_complete) is not None


def plan_download(model: str | None, texture: bool, rembg: str | None) -> DownloadPlan:
    wanted: list[tuple[str, str, Callable[[str, str], bool]]] = []
    if model:
        spec = HUNYUAN_MODELS[model]
        wanted += [(repo, sub, _shape_present) for repo, sub in model_folders(spec)]
    if texture:
        wanted += [(TEXTURE_REPO, sub, _texture_present) for sub in TEXTURE_SUBFOLDERS]
    repos: dict[str, list[str]] = {}
    for repo, sub, present in wanted:
        if not present(repo, sub):
            repos.setdefault(repo, []).append(sub)
    needs_rembg = rembg if rembg and rembg_model_path(rembg) is None else None
    return DownloadPlan(repos, needs_rembg)


def _hub_seconds(name: str) -> float | None:
    """A set timeout variable's seconds (None when unset), or :class:`DownloadError` saying why it is unusable."""
    try:
        return env_seconds(name, None)
    except OptionsError as exc:
        raise DownloadError(str(exc)) from None


def hub_timeouts(timeout: float | None, log: Callable[[str], None] = print) -> float:
    """Settle huggingface_hub's two timeouts and return the one for reaching
    the hub. An explicit ``timeout`` overrides both variables (saying so when
    it replaces a set value); without one, a set variable is kept."""
    etag, read = (_hub_seconds(name) for name in HUB_TIMEOUT_VARIABLES)
    if timeout is not None:
        for name, value in zip(HUB_TIMEOUT_VARIABLES, (etag, read), strict=True):
            if value is not None and value != timeout:
                log(f"--timeout {timeout:g} s overrides {name}={value:g}.")
        etag = read = timeout
    etag = etag if etag is not None else DEFAULT_TIMEOUT_S
    read = read if read is not None else DEFAULT_TIMEOUT_S
    # huggingface_hub reads whole seconds, once, at import.
    whole = dict(zip(HUB_TIMEOUT_VARIABLES, (math.ceil(etag), math.ceil(read)), strict=True))
    os.environ.update({name: str(seconds) for name, seconds in whole.items()})
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: update the copy it made
        for name, seconds in whole.items():
            setattr(constants, name, seconds)
    return etag


def _snapshot_download(repo_id: str, subfolders: Sequence[str], dest: Path | None, timeout: float) -> Path:
    """Fetch only ``subfolders`` of ``repo_id``: into ``dest/<repo_id>`` (hy3dgen
    layout) or, with ``dest`` None, into the HF cache. Returns the folder that
    holds the subfolders."""
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*" for sub in subfolders]
    if dest is None:
        return Path(
            snapshot_download(repo_id, allow_patterns=patterns, cache_dir=str(hf_hub_cache()), etag_timeout=timeout)
        )
    target = dest / repo_id
    snapshot_download(repo_id, allow_patterns=patterns, local_dir=str(target), etag_timeout=timeout)
    return target


def _download_rembg(name: str, timeout: float) -> Path:
    require_network("https://github.com", timeout)
    from rembg.sessions import sessions  # slow first import (numba); only here

    if name not in sessions:
        raise DownloadError(f"rembg has no model named '{name}'.")
    return Path(sessions[name].download_models())


def download(
    model: str | None = None,
    *,
    texture: bool = False,
    rembg: str | None = None,
    dest: Path | None = None,
    hf_cache: bool = False,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> DownloadPlan:
    """Download what is missing. Raises :class:`DownloadError` quickly when
    offline, and verifies every folder afterwards: a partial download never
    counts as present (the checks look at complete files only).

    ``timeout`` (``--timeout``), when given, wins over HF_HUB_ETAG_TIMEOUT and
    HF_HUB_DOWNLOAD_TIMEOUT; otherwise those apply where set, else 15 s."""
    timeout = hub_timeouts(timeout, log)
    plan = plan_download(model, texture, rembg)
    if plan.empty:
        log("Everything requested is already present.")
        return plan
    if plan.repos and _offline():
        raise DownloadError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it on a machine with network access "
            f"(missing: {_describe_plan(plan)})."
        )
    target = None if hf_cache else (dest or hy3dgen_root())
    if plan.repos:
        require_network(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)
    for repo_id, subfolders in plan.repos.items():
        log(f"Downloading {repo_id}: {', '.join(subfolders)} -> {target or hf_hub_cache()}")
        base = _snapshot_download(repo_id, subfolders, target, timeout)
        _verify(repo_id, subfolders, base)
        for sub in subfolders:
            write_manifest(base / sub, base)
    if plan.rembg:
        log(f"Downloading rembg model {plan.rembg}")
        _download_rembg(plan.rembg, timeout)
        if rembg_model_path(plan.rembg) is None:
            raise DownloadError(f"rembg model {plan.rembg} is still missing after the download.")
    return plan


def _verify(repo_id: str, subfolders: Iterable[str], base: Path) -> None:
    for sub in subfolders:
        ok = (
            diffusers_folder_complete(base / sub)
            if sub in TEXTURE_SUBFOLDERS
            else inspect_shape_folder(base / sub) is not None
        )
        if not ok:
            raise DownloadError(f"{repo_id}/{sub} is incomplete after the download ({base / sub}); run it again.")


def _describe_plan(plan: DownloadPlan) -> str:
    parts = [f"{repo}: {', '.join(subs)}" for repo, subs in plan.repos.items()]
    return "; ".join(parts + ([f"rembg {plan.rembg}"] if plan.rembg else []))
