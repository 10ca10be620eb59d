"""``image_url``: a safe download, tested against a real HTTP server on loopback.

Loopback is itself a refused address, which makes it the natural first test;
the other rules are reached with ``HY3D_ALLOW_PRIVATE_URLS=1`` or, for a
redirect, by letting only the first hop through. No test sends traffic
anywhere but 127.0.0.1: refused addresses are refused before connecting.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import worker
from fakes.images import make_subject_png
from pipeline import image_url
from pipeline.errors import ImageError, InputError
from pipeline.image_url import fetch_image_url
from pipeline.settings import load_settings

PNG = make_subject_png(128)


class Server:
    """A loopback HTTP server whose routes misbehave on purpose."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.hits: list[str] = []
        self.stop_dripping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                outer.hosts.append(self.headers.get("Host", ""))
                path, _, query = self.path.partition("?")
                if path == "/subject.png":
                    return self._send(200, "image/png", PNG)
                if path == "/page.html":
                    return self._send(200, "text/html; charset=utf-8", b"<html>not an image</html>")
                if path == "/declared-huge.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(10**9))
                    self.end_headers()
                    return
                if path == "/endless.png":  # no Content-Length: the cap must cut it off mid-stream
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(10_000):
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        pass
                    return
                if path == "/drip.png":  # a byte at a time: each read is quick, the whole is not
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for byte in PNG[:200]:
                            if outer.stop_dripping.wait(0.1):
                                break
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                if path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query.removeprefix("to="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._send(404, "text/plain", b"missing")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def server():
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.stop_dripping.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=10)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("HY3D_ALLOW_PRIVATE_URLS", raising=False)
    monkeypatch.delenv("HY3D_URL_TIMEOUT_S", raising=False)
    monkeypatch.setattr(worker, "_PIPELINE", None)


@pytest.fixture
def allow_private(monkeypatch):
    monkeypatch.setenv("HY3D_ALLOW_PRIVATE_URLS", "1")


def fetch(url: str) -> bytes:
    return fetch_image_url(url, load_settings())


def job(**fields) -> dict:
    payload = {"model": "draft", "remove_background": False, "max_faces": 2000, **fields}
    return worker.handler({"id": "url-job", "input": payload})


# -- the address rule --------------------------------------------------------
def test_loopback_is_refused_by_default_without_connecting(server):
    before = len(server.hits)
    response = job(image_url=server.url("/subject.png"))
    assert set(response) == {"error"}
    assert "resolves to 127.0.0.1, a loopback address" in response["error"]
    assert "HY3D_ALLOW_PRIVATE_URLS=1" in response["error"]
    assert response["error"].count(". ") == 0 and response["error"].endswith(".")  # one sentence
    assert len(server.hits) == before  # refused before connecting


def test_served_when_private_urls_are_allowed(server, allow_private):
    response = job(image_url=server.url("/subject.png"))
    assert "error" not in response, response
    assert response["format"] == "glb" and response["faces"] > 0
    assert response["timings"]["download"] >= 0


@pytest.mark.parametrize(
    "url,rule",
    [
        ("http://10.1.2.3/x.png", "a private address"),
        ("http://192.168.0.10/x.png", "a private address"),
        ("http://169.254.10.10/x.png", "a link-local address"),
        ("http://224.0.0.1/x.png", "a multicast address"),
        ("http://0.0.0.0/x.png", "an unspecified address"),
        ("http://[::1]/x.png", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/x.png", "a loopback address"),
        ("http://100.64.1.1/x.png", "a non-public address"),
    ],
)
def test_each_address_class_is_named(url, rule):
    with pytest.raises(ImageError, match=rule):
        fetch(url)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/"])
def test_cloud_metadata_is_refused_even_when_private_is_allowed(url, allow_private):
    with pytest.raises(ImageError, match="cloud-metadata"):
        fetch(url)


def test_every_resolved_address_is_checked(monkeypatch):
    monkeypatch.setattr(image_url, "resolve", lambda host, port: ["8.8.8.8", "10.0.0.5"])
    with pytest.raises(ImageError, match="resolves to 10.0.0.5, a private address"):
        fetch("http://mixed.example/x.png")


def test_connection_is_pinned_to_the_checked_address(server, allow_private, monkeypatch):
    """The name is resolved once; the socket goes to that address and the
    request names the host. A second, different DNS answer (rebinding) is never asked for."""
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    calls = []

    def resolver(host, port):
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(image_url, "resolve", resolver)
    assert fetch(f"http://images.test:{server.port}/subject.png") == PNG
    assert calls == ["images.test"]
    assert server.hosts[-1] == f"images.test:{server.port}"


# -- redirects ----------------------------------------------------------------
def test_redirect_to_a_private_address_is_refused(server, monkeypatch):
    """With the variable unset, only the first hop (loopback, the test server)
    is let through; the redirect's target is checked again and refused."""
    real = image_url.address_problem
    seen = []

    def first_hop_only(address, allow_private):
        seen.append(str(address))
        return None if len(seen) == 1 else real(address, allow_private)

    monkeypatch.setattr(image_url, "address_problem", first_hop_only)
    with pytest.raises(ImageError, match="resolves to 10.0.0.7, a private address"):
        fetch(server.url("/redirect?to=http://10.0.0.7/internal.png"))
    assert seen == ["127.0.0.1", "10.0.0.7"]


def test_redirect_to_metadata_is_refused(server, allow_private):
    with pytest.raises(ImageError, match="cloud-metadata"):
        fetch(server.url("/redirect?to=http://169.254.169.254/latest/meta-data/"))


def test_redirects_are_followed_up_to_three(server, allow_private):
    target = server.url("/subject.png")
    for _ in range(3):
        target = server.url("/redirect?to=" + target)
    assert fetch(target) == PNG
    with pytest.raises(ImageError, match="redirected more than 3 times"):
        fetch(server.url("/redirect?to=" + target))


# -- size, time and type --------------------------------------------------------
def test_oversized_body_is_cut_off(server, allow_private, monkeypatch):
    monkeypatch.setenv("HY3D_MAX_IMAGE_BYTES", "200000")
    started = time.monotonic()
    with pytest.raises(ImageError, match="sent more than 200000 bytes; the download was cut off"):
        fetch(server.url("/endless.png"))
    assert time.monotonic() - started < 10  # it stopped reading, it did not take the 655 MB


def test_declared_oversized_body_is_refused_unread(server, allow_private, monkeypatch):
    monkeypatch.setenv("HY3D_MAX_IMAGE_BYTES", "200000")
    with pytest.raises(ImageError, match="declares 1000000000 bytes, over the 200000-byte image limit"):
        fetch(server.url("/declared-huge.png"))


def test_slow_server_times_out_in_total(server, allow_private, monkeypatch):
    """Each byte arrives within 0.1 s, so only a total deadline catches it."""
    monkeypatch.setenv("HY3D_URL_TIMEOUT_S", "1")
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"did not finish downloading within 1 s \(HY3D_URL_TIMEOUT_S\)"):
        fetch(server.url("/drip.png"))
    assert time.monotonic() - started < 3


def test_wrong_content_type_is_refused(server, allow_private):
    with pytest.raises(ImageError, match="content type 'text/html'; only image/\\* types are accepted"):
        fetch(server.url("/page.html"))


def test_http_error_status_is_named(server, allow_private):
    with pytest.raises(ImageError, match="answered HTTP 404"):
        fetch(server.url("/nothing-here.png"))


@pytest.mark.parametrize(
    "url,match",
    [
        ("ftp://example.com/x.png", "http or https"),
        ("http:///x.png", "no host"),
        ("http://user:pw@example.com/x.png", "user name or password"),
        ("", "non-empty"),
    ],
)
def test_malformed_urls(url, match):
    with pytest.raises(InputError, match=match):
        fetch(url)


def test_bad_timeout_setting(monkeypatch):
    monkeypatch.setenv("HY3D_URL_TIMEOUT_S", "soon")
    assert "HY3D_URL_TIMEOUT_S" in job(image_url="http://example.com/x.png")["error"]


# -- the request contract --------------------------------------------------------
def test_image_and_image_url_together_is_an_error(subject_b64):
    assert job(image=subject_b64, image_url="http://example.com/x.png") == {
        "error": "Send either 'image' or 'image_url', not both."
    }


def test_neither_image_nor_image_url_is_an_error():
    assert "'image_url'" in job()["error"]


def test_image_url_must_be_a_string():
    assert "Field 'image_url' must be a non-empty http or https URL string." == job(image_url=5)["error"]


def test_worker_keeps_serving_after_a_refusal(server, subject_b64):
    assert "error" in job(image_url=server.url("/subject.png"))
    assert "error" not in job(image=subject_b64)


# -- https: the pinned connection still checks the certificate against the name --------
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An https server on loopback whose self-signed certificate names images.test."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    srv = Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    srv.httpd.socket = context.wrap_socket(srv.httpd.socket, server_side=True)
    srv.thread.start()
    try:
        yield srv, str(cert_path)
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=10)


def test_https_is_pinned_and_verified_for_the_name(tls_server, allow_private, monkeypatch):
    import certifi

    srv, ca = tls_server
    monkeypatch.setattr(image_url, "resolve", lambda host, port: ["127.0.0.1"])
    # Not trusted: the pinned connection still verifies the certificate.
    with pytest.raises(ImageError, match="could not be fetched from images.test"):
        fetch(f"https://images.test:{srv.port}/subject.png")
    # Trusted, and valid for the name (not for 127.0.0.1, where the socket goes): served.
    monkeypatch.setattr(certifi, "where", lambda: ca)
    assert fetch(f"https://images.test:{srv.port}/subject.png") == PNG
    assert srv.hosts[-1] == f"images.test:{srv.port}"
    # A name the certificate does not cover is refused.
    monkeypatch.setattr(image_url, "resolve", lambda host, port: ["127.0.0.1"])
    with pytest.raises(ImageError, match="could not be fetched from other.test"):
        fetch(f"https://other.test:{srv.port}/subject.png")
