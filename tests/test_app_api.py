"""The web app through its HTTP API, as anyone who reaches its port could use it (gradio_client
and plain HTTP against a real `python -m voxtral_exp.app` subprocess): a login is required where
one is set, serving beyond this machine without one is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.app_server import free_port, start_app, stop_app
from tests.conftest import ROOT
from voxtral_exp.app.server import AUTH_VARIABLE, ServerError, login, parse_args

LOGIN = ("tester", "correct horse battery staple")


class App:
    """The app under test: its URL, workspace and login."""

    def __init__(self, url: str, workspace: Path, base: Path):
        self.url, self.workspace, self.base = url, workspace, base

    def client(self) -> Client:
        return Client(self.url, auth=LOGIN, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app subprocess for the module, with a login (from --auth-file)."""
    base = tmp_path_factory.mktemp("app-api")
    workspace = base / "w" / "workspace"
    workspace.mkdir(parents=True)
    (base / "login").write_text(f"{LOGIN[0]}:{LOGIN[1]}\n")
    process, port = start_app(["--workdir", str(workspace), "--auth-file", str(base / "login")], base / "app.log")
    yield App(f"http://127.0.0.1:{port}/", workspace, base)
    stop_app(process)


def test_without_the_login_every_request_is_refused(app):
    for path in ("config", "gradio_api/info"):
        assert httpx.get(app.url + path).status_code == 401
    assert httpx.post(app.url + "gradio_api/queue/join", json={}).status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - whatever gradio_client raises, it gets nowhere
        Client(app.url, verbose=False)
    wrong = httpx.post(app.url + "login", data={"username": LOGIN[0], "password": "guess"})
    assert wrong.status_code == 400
    assert "/start" in app.client().view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_serving_beyond_this_machine_without_a_login_is_refused_at_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != AUTH_VARIABLE}
    proc = subprocess.run(
        [sys.executable, "-m", "voxtral_exp.app", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "refusing to serve on 0.0.0.0 without a login" in proc.stderr
    assert "--auth-file FILE" in proc.stderr and "leave out --host" in proc.stderr


def test_the_login_comes_from_the_command_line_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTH_VARIABLE, raising=False)
    assert login(parse_args([])) is None
    assert login(parse_args(["--auth", "me:pass:word"])) == ("me", "pass:word")
    (tmp_path / "login").write_text("\nme:secret\n")
    assert login(parse_args(["--auth-file", str(tmp_path / "login")])) == ("me", "secret")
    monkeypatch.setenv(AUTH_VARIABLE, "env:secret")
    assert login(parse_args([])) == ("env", "secret")
    for bad in ("nopassword", ":secret", "me:"):
        with pytest.raises(ServerError, match="user:password"):
            login(parse_args(["--auth", bad]))
    (tmp_path / "two").write_text("a:b\nc:d\n")
    with pytest.raises(ServerError, match="exactly one line"):
        login(parse_args(["--auth-file", str(tmp_path / "two")]))
