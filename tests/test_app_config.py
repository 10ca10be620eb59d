"""App launch configuration: flags and their environment variables."""

from __future__ import annotations

import pytest

import app


def test_flags_default_to_env(monkeypatch):
    monkeypatch.setenv("HY3D_HOST", "0.0.0.0")
    monkeypatch.setenv("HY3D_PORT", "9000")
    monkeypatch.setenv("HY3D_AUTH", "qa:secret")
    args = app.parse_args([])
    assert (args.host, args.port, args.auth) == ("0.0.0.0", 9000, "qa:secret")
    assert app.parse_args(["--port", "7000"]).port == 7000


def test_defaults_bind_loopback(monkeypatch):
    for name in ("HY3D_HOST", "HY3D_PORT", "HY3D_AUTH"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.auth) == ("127.0.0.1", 7860, None)


@pytest.mark.parametrize("auth", ["qa", "qa:", ":secret"])
def test_malformed_auth_is_refused(auth):
    with pytest.raises(SystemExit, match="user:password"):
        app.main(["--auth", auth])


def test_auth_is_passed_to_launch(monkeypatch):
    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

        def close(self):  # main closes the demo when launch returns (SIGTERM, Ctrl-C)
            seen["closed"] = True

    monkeypatch.setattr(app, "build_demo", lambda pipeline=None: FakeDemo())
    app.main(["--auth", "qa:se:cret", "--host", "127.0.0.1", "--port", "7861"])
    assert seen["auth"] == ("qa", "se:cret")
    assert seen["closed"] is True
    assert (seen["server_name"], seen["server_port"], seen["show_error"]) == ("127.0.0.1", 7861, True)


def test_remote_mode_without_api_key_is_refused(monkeypatch):
    monkeypatch.setenv("HY3D_REMOTE_ENDPOINT", "abc123")
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="RUNPOD_API_KEY"):
        app.main([])


def test_remote_mode_builds_a_remote_demo(monkeypatch):
    from pipeline.runpod.remote import RemoteGenerator

    monkeypatch.setenv("HY3D_REMOTE_ENDPOINT", "abc123")
    monkeypatch.setenv("RUNPOD_API_KEY", "key")
    built = []

    class FakeDemo:
        def launch(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(app, "build_demo", lambda pipeline=None: built.append(pipeline) or FakeDemo())
    app.main([])
    assert isinstance(built[0], RemoteGenerator)


@pytest.mark.parametrize("name,value", [("HY3D_PORT", "http"), ("HY3D_QUEUE_SIZE", "abc"), ("HY3D_MODEL", "bogus")])
def test_bad_configuration_exits_with_one_clear_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        app.main([])
