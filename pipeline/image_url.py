"""Fetch a request's ``image_url`` without letting it reach inside the network.

A worker that downloads whatever URL a caller names is a server-side request
forgery (SSRF) tool: ``http://169.254.169.254/`` is the cloud's metadata
service (credentials), ``http://127.0.0.1:...`` the worker's own local API,
``http://10.x`` the provider's private network. So, before connecting and
again for every redirect (at most :data:`MAX_REDIRECTS`):

* the host is resolved once and every address it resolves to is checked;
  loopback, private, link-local, multicast, reserved, shared (CGNAT) and
  unspecified addresses are refused, and cloud-metadata addresses always are;
* the connection is then made to that checked address (urllib3 pool on the IP,
  with ``Host``, SNI and certificate checks for the name), so a DNS answer
  that changes between check and connect (DNS rebinding) cannot redirect it;
* the body is read in chunks and cut off past the image byte limit
  (``HY3D_MAX_IMAGE_BYTES``), a ``Content-Length`` over it is refused unread;
* everything, redirects included, must finish within ``HY3D_URL_TIMEOUT_S``
  (15 s) in all, checked between chunks as well as per socket operation;
* only ``image/*`` content types are accepted.

``HY3D_ALLOW_PRIVATE_URLS=1`` lifts the address rule (tests, private
networks); metadata addresses stay refused even then. Environment proxies are
not used: a proxy would connect to the name itself, undoing the pinning.
Each refusal is one sentence naming the rule.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import ImageError, OptionsError
from .settings import Settings, env_seconds

MAX_REDIRECTS = 3
DEFAULT_TIMEOUT_S = 15.0
CHUNK = 64 * 1024
USER_AGENT = "hy3d-service image_url fetcher"
# Cloud instance-metadata services: AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
ALLOW_PRIVATE_ENV = "HY3D_ALLOW_PRIVATE_URLS"
TIMEOUT_ENV = "HY3D_URL_TIMEOUT_S"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to fake DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageError(f"Field 'image_url' host {host!r} could not be resolved ({exc}).") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # str(): typeshed also allows (int, bytes) addresses


def address_problem(address: Address, allow_private: bool) -> str | None:
    """Why the address rule refuses ``address`` ("a loopback address"), or None."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud-metadata address"
    if allow_private:
        return None
    for kind, flag in (
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("an unspecified", address.is_unspecified),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    if not address.is_global:
        return "a non-public address"  # e.g. 100.64.0.0/10, carrier-grade NAT
    return None


@dataclass(frozen=True)
class Target:
    """One checked hop: the URL's parts and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def allow_private() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip() == "1"


def timeout_seconds() -> float:
    return env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, at_most=300)


def check_url(url: str) -> Target:
    """Parse, resolve and check one URL; raise ImageError naming the rule it breaks."""
    if not isinstance(url, str) or not url.strip():
        raise OptionsError("Field 'image_url' must be a non-empty http or https URL string.")
    shown = url if len(url) <= 80 else url[:77] + "..."
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ImageError(f"Field 'image_url' is not a valid URL ({exc}).") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ImageError(f"Field 'image_url' must use http or https, got {shown!r}.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ImageError(f"Field 'image_url' has no host: {shown!r}.")
    if parts.username or parts.password:
        raise ImageError("Field 'image_url' must not carry a user name or password.")
    scheme = parts.scheme.lower()
    port = port or (443 if scheme == "https" else 80)
    if host in METADATA_NAMES:
        raise ImageError(f"Field 'image_url' host {host} is a cloud-metadata service, which is always refused.")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    if not addresses:
        raise ImageError(f"Field 'image_url' host {host!r} resolved to no address.")
    private_ok = allow_private()
    for address in addresses:  # every answer is checked: one bad record refuses the URL
        problem = address_problem(address, private_ok)
        if problem == "a cloud-metadata address":
            raise ImageError(
                f"Field 'image_url' host {host} resolves to {address}, a cloud-metadata address, "
                "which is always refused."
            )
        if problem:
            raise ImageError(
                f"Field 'image_url' host {host} resolves to {address}, {problem}; loopback, private, link-local, "
                f"multicast and other non-public addresses are refused unless {ALLOW_PRIVATE_ENV}=1."
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port, path, str(addresses[0]))


def _pool(target: Target, timeout):
    """A urllib3 pool connected to the checked address, speaking to the name."""
    import urllib3

    if target.scheme == "https":
        import certifi

        return urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    name = f"[{target.host}]" if ":" in target.host else target.host
    return name if target.port == default else f"{name}:{target.port}"


def fetch_image_url(url: str, settings: Settings) -> bytes:
    """The image bytes at ``url`` under the rules in the module docstring."""
    import urllib3

    limit = settings.max_image_bytes
    budget = timeout_seconds()
    deadline = time.monotonic() + budget
    too_slow = ImageError(f"Field 'image_url' did not finish downloading within {budget:g} s ({TIMEOUT_ENV}).")

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise too_slow
        return left

    current = url
    for hop in range(MAX_REDIRECTS + 1):
        target = check_url(current)
        left = remaining()
        pool = _pool(target, urllib3.Timeout(connect=left, read=left))
        try:
            response = pool.urlopen(
                "GET",
                target.path,
                headers={
                    "Host": _host_header(target),
                    "User-Agent": USER_AGENT,
                    "Accept": "image/png, image/jpeg, image/webp, image/*",
                },
                redirect=False,
                preload_content=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=left, read=left),
            )
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            pool.close()
            raise too_slow from None
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise ImageError(f"Field 'image_url' could not be fetched from {target.host}: {_reason(exc)}.") from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise ImageError(f"Field 'image_url' got HTTP {response.status} with no Location header.")
                if hop == MAX_REDIRECTS:
                    raise ImageError(f"Field 'image_url' redirected more than {MAX_REDIRECTS} times.")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise ImageError(f"Field 'image_url' answered HTTP {response.status}, not 200.")
            content_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if not content_type.startswith("image/"):
                raise ImageError(
                    f"Field 'image_url' has content type {content_type or 'none'!r}; only image/* types are accepted."
                )
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(f"declares {int(declared)} bytes", limit)
            return _read_capped(response, limit, remaining, too_slow)
        finally:
            response.release_conn()
            response.close()
            pool.close()
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _read_capped(response, limit: int, remaining, too_slow: ImageError) -> bytes:
    import urllib3

    chunks, size = [], 0
    sock = getattr(getattr(response, "connection", None), "sock", None)
    try:
        while True:
            # The total budget holds even against a server that drips bytes:
            # each wait is bounded by what is left, and read1 returns what has
            # arrived instead of waiting for a full chunk.
            left = remaining()
            if sock is not None:
                sock.settimeout(left)
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _too_large(f"sent more than {limit} bytes; the download was cut off", limit)
            chunks.append(chunk)
    except (TimeoutError, urllib3.exceptions.TimeoutError, urllib3.exceptions.ReadTimeoutError):
        raise too_slow from None
    except urllib3.exceptions.ProtocolError as exc:
        raise ImageError(f"Field 'image_url' download broke off: {_reason(exc)}.") from None
    if not chunks:
        raise ImageError("Field 'image_url' returned an empty body.")
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> ImageError:
    return ImageError(f"Field 'image_url' {what}, over the {limit}-byte image limit (HY3D_MAX_IMAGE_BYTES).")


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).rstrip(".")[:200]
