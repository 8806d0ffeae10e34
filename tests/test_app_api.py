"""The web app through its HTTP API, as anyone who reaches its port could use it (gradio_client
and plain HTTP against a real `python -m voxtral_exp.app` subprocess, one for the module): a login
is required where one is set, serving beyond this machine without one is refused, every path stays
in the workspace, and no form value becomes config syntax: the owner's HF_TOKEN never shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app_server import free_port, start_app, stop_app
from tests.conftest import ROOT, read_jsonl, wait_for
from tests.data_fixtures import sample_rows
from voxtral_exp.app.command import DATA, SOURCES
from voxtral_exp.app.dataset import TableSelection, select_clip
from voxtral_exp.app.server import AUTH_VARIABLE, ServerError, login, parse_args
from voxtral_exp.app.workspace import Workspace
from voxtral_exp.run.artifacts import model_files

LOGIN = ("tester", "correct horse battery staple")
FAKE_TOKEN = "hf_FakeOwnerTokenThatMustNeverShow0123"  # the app's HF_TOKEN
INJECTIONS = ["${oc.env:HF_TOKEN}", "a b=c", "../../etc"]


CLIP = sample_rows("train")[0]["audio_path"]


class App:
    """The app under test: its URL, workspace and login; ``base`` holds the workspace (base/w/workspace)
    and the app's working directory (base/c/cwd), so that `../../x` from either lands in base."""

    def __init__(self, url: str, workspace: Path, base: Path):
        self.url, self.workspace, self.base = url, workspace, base

    def client(self) -> Client:
        return Client(self.url, auth=LOGIN, verbose=False, download_files=False)

    def files_outside(self) -> set[Path]:
        """Every file and folder under base that is not in the workspace."""
        return {p for p in self.base.rglob("*") if not p.is_relative_to(self.workspace)}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app subprocess for the module, with a login (from --auth-file)."""
    base = tmp_path_factory.mktemp("app-api")
    workspace, cwd = base / "w" / "workspace", base / "c" / "cwd"
    workspace.mkdir(parents=True)
    cwd.mkdir(parents=True)
    (base / "login").write_text(f"{LOGIN[0]}:{LOGIN[1]}\n")
    args = ["--workdir", str(workspace), "--auth-file", str(base / "login")]
    env = {"HF_TOKEN": FAKE_TOKEN, "TRACKIO_DIR": str(workspace / "trackio"), "GRADIO_SHARE": "true"}
    process, port = start_app(args, base / "app.log", env=env, cwd=cwd)
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
    log = app.base / "app.log"  # gradio's word on a public link, once it has launched
    wait_for(lambda: re.search("public link|share link|public URL", log.read_text()), timeout=60, what="gradio's word")
    assert "To create a public link, set `share=True`" in log.read_text()  # GRADIO_SHARE=true opened no tunnel


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
    assert AUTH_VARIABLE not in os.environ  # the runs and commands the app starts do not inherit it
    for bad in ("nopassword", ":secret", "me:"):
        with pytest.raises(ServerError, match="user:password"):
            login(parse_args(["--auth", bad]))
    (tmp_path / "two").write_text("a:b\nc:d\n")
    with pytest.raises(ServerError, match="exactly one line"):
        login(parse_args(["--auth-file", str(tmp_path / "two")]))


def test_the_dashboard_link_opens_trackio_on_this_machine_only(app):
    link = app.client().predict(api_name="/dashboard")
    url = re.fullmatch(r"\[Open the trackio dashboard\]\((http://127\.0\.0\.1:\d+/\?project=voxtral_exp)\): .*", link)[
        1
    ]
    port = urlsplit(url).port
    assert port != urlsplit(app.url).port and "127.0.0.1 (this machine only" in link
    assert httpx.get(url).status_code == 200 and httpx.get(f"http://127.0.0.1:{port}/version").status_code == 200
    with socket.socket() as s:  # bound to 127.0.0.1 alone: another address of this machine is refused
        assert s.connect_ex(("127.0.0.2", port)) != 0
    assert app.client().predict(api_name="/dashboard") == link  # one dashboard, however many clicks


def test_every_path_the_app_is_given_stays_in_its_workspace(app, tmp_path):
    (app.workspace / "link").symlink_to(tmp_path, target_is_directory=True)  # a way out through a symbolic link
    before = app.files_outside()
    client = app.client()
    KNOBS = [1e-3, 2, 8, 32, 2]
    for value in ("../../etc", "/etc", "datasets/../../../escaped", "link/inside", str(tmp_path)):
        for endpoint, args, field in [
            ("/add_clip", [value, handle_file(CLIP), "hello", "en"], "Dataset folder"),
            ("/update_clip", [value, 0, "hello", "en"], "Dataset folder"),
            ("/delete_clip", [value, 0], "Dataset folder"),
            ("/save", [value, 0.2], "Dataset folder"),
            ("/start", ["tiny", "lora", "recorded folder", value, *KNOBS], "Folder, manifest or Hub id"),
            ("/start", ["tiny", "lora", "manifest", value, *KNOBS], "Folder, manifest or Hub id"),
            ("/try_model", [value, "", handle_file(CLIP), "en"], "Run"),
            ("/publish", [value, "me/model", "", False, True], "Run"),
        ]:
            with pytest.raises(AppError, match=f"{field}: .* is outside the workspace"):
                client.predict(*args, api_name=endpoint)
    assert app.files_outside() == before and not list(tmp_path.iterdir())
    assert not (app.workspace / "outputs").exists()  # no run started


class Caller:
    """Calls endpoints and keeps every answer (results and error messages) to search them."""

    def __init__(self, client: Client):
        self.client, self.answers = client, []

    def __call__(self, endpoint: str, *args) -> object:
        try:
            out = self.client.predict(*args, api_name=endpoint)
        except AppError as e:
            out = e
        self.answers.append(str(out))
        return out

    def refused(self, endpoint: str, *args) -> str:
        out = self(endpoint, *args)
        assert isinstance(out, AppError), f"{endpoint}{args} was accepted: {out}"
        return str(out)


def test_a_handler_called_without_its_event_or_values_answers_clearly_and_logs_no_traceback(app):
    log = app.base / "app.log"
    logged = len(log.read_text())
    call = Caller(app.client())
    assert not isinstance(call("/add_clip", "datasets/select", handle_file(CLIP), "hello there", "en"), AppError)
    assert call.refused("/select_clip", "datasets/select") == "Clip: select a clip in the table first"  # no event
    for field, endpoint, *args in [
        ("Clip", "/update_clip", "datasets/select", None, None, None),
        ("Clip", "/delete_clip", "datasets/select", None),
        ("Dataset folder", "/add_clip", None, None, None, None),
        ("Dataset folder", "/select_clip", None),
        ("Data", "/start", *[None] * 9),
        ("Run", "/try_model", None, None, None, None),
        ("Run", "/publish", None, None, None, None, None),
    ]:
        assert call.refused(endpoint, *args).startswith(f"{field}: ")
    assert "Traceback" not in log.read_text()[logged:]  # the user's mistakes, not the app's

    workspace = Workspace.create(app.workspace)

    def select(index: object) -> tuple:  # the event as the page sends it, and as a crafted call could
        return select_clip(workspace, "datasets/select", TableSelection(None, {"index": index, "value": ""}))

    assert select([0, 1])[2] == "hello there"
    for index in ([1, 0], [-1, 0], "0", [True, 0], None):
        with pytest.raises(gr.Error, match="Clip: select a clip in the table first"):
            select(index)


KNOBS = [1e-3, 2, 8, 32, 2]  # learning rate, steps, LoRA r, LoRA alpha, batch size


@pytest.fixture(scope="module")
def trained(app):
    """A 2-step run started through the API on three clips whose transcripts are the injections
    (transcripts are data: kept literally, trained on); the caller keeps every answer so far."""
    call = Caller(app.client())
    before = app.files_outside()
    for text in INJECTIONS:
        assert not isinstance(call("/add_clip", "datasets/literal", handle_file(CLIP), text, "en"), AppError)
    assert not isinstance(call("/save", "datasets/literal", 0.34), AppError)
    call("/start", "tiny", "lora", "recorded folder", "datasets/literal", *KNOBS)
    deadline = time.time() + 300
    while "Finished" not in (status := call("/watch")[0]):
        assert time.time() < deadline, status
        time.sleep(1)
    run_dir = next((app.workspace / "outputs" / "app").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed", status
    return run_dir, call, before


def test_form_values_are_refused_or_used_literally_and_the_token_never_shows(app, trained):
    run_dir, call, before = trained
    config = (run_dir / "resolved_config.yaml").read_text()
    assert f"train_manifest: {app.workspace}/datasets/literal/train.jsonl" in config
    texts = {row["text"] for row in read_jsonl(app.workspace / "datasets" / "literal" / "clips.jsonl")}
    assert texts == set(INJECTIONS)
    assert {p["reference"] for p in read_jsonl(run_dir / "predictions.jsonl")} <= set(INJECTIONS)

    # every other text field refuses every injection, naming itself
    run, clip = str(run_dir.relative_to(app.workspace)), handle_file(CLIP)
    numbers = ["Learning rate", "Steps", "LoRA r", "LoRA alpha", "Batch size"]
    for value in INJECTIONS:
        for field, endpoint, *args in [
            ("Dataset folder", "/add_clip", value, clip, "hello", "en"),
            ("language", "/add_clip", "datasets/other", clip, "hello", value),
            ("Dataset folder", "/update_clip", value, 0, "hello", "en"),
            ("language", "/update_clip", "datasets/literal", 0, "hello", value),
            ("Dataset folder", "/delete_clip", value, 0),
            ("Dataset folder", "/save", value, 0.2),
            ("Model", "/start", value, "lora", "recorded folder", "datasets/literal", *KNOBS),
            ("Method", "/start", "tiny", value, "recorded folder", "datasets/literal", *KNOBS),
            ("Data", "/start", "tiny", "lora", value, "datasets/literal", *KNOBS),
            *[(DATA, "/start", "tiny", "lora", source, value, *KNOBS) for source in SOURCES],
            *[
                (
                    name,
                    "/start",
                    "tiny",
                    "lora",
                    "manifest",
                    "datasets/literal/train.jsonl",
                    *KNOBS[:i],
                    value,
                    *KNOBS[i + 1 :],
                )
                for i, name in enumerate(numbers)
            ],
            ("Run", "/try_model", value, "", clip, "en"),
            ("Hub model id", "/try_model", "", value, clip, "en"),
            ("language", "/try_model", run, "", clip, value),
            ("Run", "/publish", value, "me/model", "", False, True),
            ("Model repo", "/publish", run, value, "", False, True),
            ("Demo Space", "/publish", run, "me/model", value, False, True),
        ]:
            message = call.refused(endpoint, *args)
            gradio_refused = "not in the list of choices" in message or "Could not preprocess" in message
            assert message.startswith(field) or gradio_refused, message  # the app's own refusal names the field
    assert "dataset.train_manifest='" in call("/command_of", "tiny", "lora", "manifest", "datasets/x.jsonl", *KNOBS)
    assert "is not a Hub id" in call("/command_of", "tiny", "lora", "Hub dataset", INJECTIONS[0], *KNOBS)

    assert len(list((app.workspace / "outputs" / "app").iterdir())) == 1  # no other run started
    assert not any(FAKE_TOKEN in answer for answer in call.answers)
    leaks = [p for p in app.workspace.rglob("*") if p.is_file() and FAKE_TOKEN.encode() in p.read_bytes()]
    assert not leaks
    assert app.files_outside() == before


def test_publish_takes_only_finished_runs_private_unless_ticked_public(app, trained):
    run_dir, _, _ = trained
    call = Caller(app.client())
    lookalike = app.workspace / "outputs" / "lookalike" / "final"  # a model folder, but no run of this project
    shutil.copytree(run_dir / "final", lookalike)
    for folder in ("outputs/lookalike", "outputs/lookalike/final", "datasets/literal", "outputs/app"):
        assert "is not a finished run" in call.refused("/publish", folder, "me/model", "", False, True)
    run = str(run_dir.relative_to(app.workspace))
    private = call("/publish", run, "me/model", "", False, True)
    assert "--public" not in private.splitlines()[0] and "to the private model repository me/model" in private
    listed = [line.strip() for line in private.split("model repository me/model:")[1].splitlines()[1:10]]
    assert listed == model_files(run_dir / "final") and "training_args.bin" not in private
    public = call("/publish", run + "/final", "me/model", "", True, True)
    assert "--public" in public.splitlines()[0] and "to the public model repository me/model" in public
    offline = call("/publish", run, "me/model", "", False, False)  # the app runs with HF_HUB_OFFLINE=1
    assert "error: could not publish to the Hub" in offline and "Traceback" not in offline
    assert not any(FAKE_TOKEN in answer for answer in call.answers)
