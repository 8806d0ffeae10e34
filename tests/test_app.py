"""The web app (python -m voxtral_exp.app): its functions, and the whole app driven in a real
headless Chromium (Debian's chromium + chromium-driver, through selenium)."""

import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from tests.app_server import free_port, start_app, stop_app
from tests.conftest import FAST, ROOT, compose_config, lock_held_elsewhere, read_jsonl, run_train, wait_for
from tests.data_fixtures import sample_rows, tone
from voxtral_exp.app.command import TrainForm, push_command, shown
from voxtral_exp.app.errors import FieldError
from voxtral_exp.app.fields import override
from voxtral_exp.app.job import TrainingJob, run_results
from voxtral_exp.app.page import build
from voxtral_exp.app.train import resume, watch
from voxtral_exp.app.transcription import transcribe_clip
from voxtral_exp.app.workspace import Workspace
from voxtral_exp.data.manifest import read_manifest
from voxtral_exp.data.recordings import ClipError, RecordedDataset, read_prompts
from voxtral_exp.push import main as push_main
from voxtral_exp.push import model_upload
from voxtral_exp.run.artifacts import LinkError, model_files
from voxtral_exp.run.model_card import space_files
from voxtral_exp.run.record import load_run_config

SAMPLE = ROOT / "data" / "sample"


# --- the Dataset tab's functions ------------------------------------------------------------


def test_clips_are_kept_as_16k_flac_and_saved_as_jsonl_manifests(tmp_path):
    dataset = RecordedDataset(tmp_path / "ds")
    rows = sample_rows("train")[:5]
    for row in rows:
        dataset.add(row["audio_path"], f"  {row['text']}  ", "fr_FR" if row["language"] == "fr" else row["language"])
    clips = dataset.clips()
    assert [c["id"] for c in clips] == [0, 1, 2, 3, 4] and clips[0]["text"] == rows[0]["text"]
    audio, rate = sf.read(tmp_path / "ds" / clips[0]["audio_path"])
    assert rate == 16000 and audio.ndim == 1
    dataset.update(1, "corrected words", "de")
    dataset.delete(2)
    assert [c["id"] for c in dataset.clips()] == [0, 1, 3, 4] and dataset.clips()[1]["text"] == "corrected words"
    assert not (tmp_path / "ds" / "audio" / "0002.flac").exists()
    train, evaluation = dataset.write_manifests(0.25)
    train_examples, bad = read_manifest(train)  # exactly the format dataset=jsonl reads
    eval_examples, _ = read_manifest(evaluation)
    assert not bad and len(train_examples) == 3 and len(eval_examples) == 1
    assert {e.text for e in train_examples + eval_examples} == {c["text"] for c in dataset.clips()}
    assert all(Path(e.audio).is_file() for e in train_examples)


def test_saving_replaces_only_the_manifests_it_wrote(tmp_path):
    dataset = RecordedDataset(tmp_path / "ds")
    rows = sample_rows("train")[:4]
    for row in rows[:3]:
        dataset.add(row["audio_path"], row["text"], row["language"])
    train, evaluation = dataset.write_manifests(0.3)
    dataset.add(rows[3]["audio_path"], rows[3]["text"], rows[3]["language"])
    dataset.write_manifests(0.3)  # its own manifests, from fewer clips: replaced
    assert len(train.read_text().splitlines()) + len(evaluation.read_text().splitlines()) == 4
    train.write_text(train.read_text() + '{"audio_path": "mine.flac", "text": "edited by hand"}\n')
    kept = train.read_text(), evaluation.read_text()
    with pytest.raises(ClipError, match=r"already holds train\.jsonl, not written .* kept as they are"):
        dataset.write_manifests(0.3)
    assert (train.read_text(), evaluation.read_text()) == kept

    other = RecordedDataset(tmp_path / "other")  # a folder that already holds someone's manifests
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "eval.jsonl").write_text("precious\n")
    for row in rows[:2]:
        other.add(row["audio_path"], row["text"], row["language"])
    with pytest.raises(ClipError, match=r"already holds eval\.jsonl"):
        other.write_manifests(0.5)
    assert (tmp_path / "other" / "eval.jsonl").read_text() == "precious\n"
    assert not (tmp_path / "other" / "train.jsonl").exists()


def test_a_save_cut_short_leaves_the_manifests_and_their_hashes_as_they_were(tmp_path):
    dataset = RecordedDataset(tmp_path / "ds")
    for row in sample_rows("train")[:5]:
        dataset.add(row["audio_path"], row["text"], row["language"])
    dataset.write_manifests(0.25)
    dataset.update(0, "a corrected transcript", "en")  # the next save changes its manifest
    saved = {p.name: p.read_bytes() for p in (tmp_path / "ds").glob("*.json*")}
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, limit[1]))  # a full disk, as far as train.jsonl goes
    try:
        with pytest.raises(OSError, match="File too large"):  # (~500 bytes; manifests.json is ~170)
            dataset.write_manifests(0.25)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").glob("*.json*")} == saved  # the hashes too
    train, _ = dataset.write_manifests(0.25)  # with room again, the save replaces its own manifests
    assert "a corrected transcript" in train.read_text() + (tmp_path / "ds" / "eval.jsonl").read_text()
    # killed after a manifest, before its hash: on disk is byte for byte what the next save writes
    dataset.written.unlink()
    assert dataset.write_manifests(0.25) == (train, tmp_path / "ds" / "eval.jsonl")


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("silence", "silence or near-silence"),
        ("too long", "keep clips under 30 s"),
        ("empty transcript", "empty transcript: type what is said"),
        ("unreadable", "cannot read garbage.wav"),
        ("no audio", "no audio: record a clip or upload a file first"),
        ("bad language", "not an ISO 639-1 code"),
    ],
)
def test_bad_clips_are_refused_with_what_to_do(tmp_path, problem, expected):
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32) + 1e-5, 16000)
    sf.write(tmp_path / "long.wav", tone(31.0, 8000), 8000)
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not audio at all")
    good = sample_rows("train")[0]["audio_path"]
    audio, text, language = {
        "silence": (tmp_path / "silence.wav", "hello", "en"),
        "too long": (tmp_path / "long.wav", "hello", "en"),
        "empty transcript": (good, "   ", "en"),
        "unreadable": (tmp_path / "garbage.wav", "hello", "en"),
        "no audio": (None, "hello", "en"),
        "bad language": (good, "hello", "klingon"),
    }[problem]
    dataset = RecordedDataset(tmp_path / "ds")
    with pytest.raises(ClipError, match=expected):
        dataset.add(audio, text, language)
    assert dataset.clips() == []


def test_prompts_file_gives_one_prompt_per_line(tmp_path):
    (tmp_path / "prompts.txt").write_text("open the door\n\n  close the window  \n")
    assert read_prompts(tmp_path / "prompts.txt") == ["open the door", "close the window"]


# --- Train, Try and Publish ------------------------------------------------------------------


def test_the_shown_command_is_the_one_that_runs_and_its_values_are_literal(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_NeverResolved")
    workspace = Workspace.create(tmp_path / "it's ${oc.env:HF_TOKEN} a b=c")  # the owner's odd folder name
    form = TrainForm.parse(workspace, "tiny", "lora", "recorded folder", "ds", 3e-4, 100, 16, 32, 4)
    command = form.command(workspace.root / "run")
    assert command[:2] == [sys.executable, str(ROOT / "train.py")]
    text = shown(command)
    assert shlex.split(text) == ["python", "train.py", *command[2:]]  # what a user would type runs the same
    assert text.startswith("python train.py model=tiny method=lora dataset=jsonl")
    for part in ("method.r=16", "method.alpha=32", "trainer.learning_rate=0.0003", "trainer.max_steps=100"):
        assert part in command
    assert "trainer.save_steps=20" in command
    cfg = compose_config([w for w in command[2:] if not w.startswith("hydra.")])
    assert cfg.dataset.train_manifest == str(workspace.root / "ds" / "train.jsonl")  # literally, nothing resolved
    assert cfg.dataset.eval_manifest == str(workspace.root / "ds" / "eval.jsonl")
    hub = TrainForm.parse(workspace, "voxtral-mini-3b", "full", "Hub dataset", "google/fleurs", 1e-5, 10, 8, 32, 2)
    words = hub.command(tmp_path)
    assert (
        "dataset=hub" in words and "dataset.path='google/fleurs'" in words and not any("method.r" in w for w in words)
    )
    assert push_command(tmp_path, "me/model", "me/demo", True, True)[2:] == [
        "voxtral_exp.push",
        str(tmp_path),
        "--repo-id",
        "me/model",
        "--space",
        "me/demo",
        "--public",
        "--dry-run",
    ]


@pytest.mark.parametrize(
    "value",
    ["${oc.env:HF_TOKEN}", "a b=c", "x,y", "it's", "'${oc.env:HF_TOKEN}'", "\\'${x}", "null", "1e-3", "[1,2]", "~/x"],
)
def test_an_override_is_the_literal_value_for_hydra_and_omegaconf(value, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_NeverResolved")
    if "\\" in value:
        with pytest.raises(FieldError, match="backslash"):
            override("dataset.path", value)
        return
    cfg = compose_config(["dataset=hub", override("dataset.path", value)])
    assert OmegaConf.to_container(cfg.dataset, resolve=True)["path"] == value


def test_form_values_are_checked_for_what_they_are(tmp_path):
    workspace = Workspace.create(tmp_path)
    good = ["tiny", "lora", "Hub dataset", "me/data", 1e-3, 10, 8, 32, 2]
    TrainForm.parse(workspace, *good)
    for index, bad, field in [
        (0, "${oc.env:HF_TOKEN}", "Model"),
        (1, "lora method.r=1", "Method"),
        (2, "anything", "Data"),
        (3, "${oc.env:HF_TOKEN}", "Folder, manifest or Hub id"),
        (3, "me/data extra=1", "Folder, manifest or Hub id"),
        (3, "-me/data", "Folder, manifest or Hub id"),
        (3, "me/../x", "Folder, manifest or Hub id"),
        (4, "1e-3", "Learning rate"),
        (4, float("nan"), "Learning rate"),
        (4, 2.0, "Learning rate"),
        (5, 0, "Steps"),
        (5, 2.5, "Steps"),
        (5, True, "Steps"),
        (6, "${oc.env:HF_TOKEN}", "LoRA r"),
        (8, 10**9, "Batch size"),
    ]:
        form = list(good)
        form[index] = bad
        with pytest.raises(FieldError, match=f"^{re.escape(field)}: "):
            TrainForm.parse(workspace, *form)
    for repo, space in (("${oc.env:HF_TOKEN}", ""), ("me/model", "--private"), ("me", "")):
        with pytest.raises(FieldError):
            push_command(tmp_path, repo, space, False, True)


def test_a_path_in_the_workspace_resolves_inside_it_with_names_the_app_uses(tmp_path):
    workspace = Workspace.create(tmp_path / "ws")
    (workspace.root / "link").symlink_to(tmp_path, target_is_directory=True)
    assert workspace.path(" datasets/my-speech ", "F") == workspace.root / "datasets" / "my-speech"
    assert workspace.path(str(workspace.root / "a" / "b.jsonl"), "F") == workspace.root / "a" / "b.jsonl"
    assert workspace.path("a/../b", "F") == workspace.root / "b"
    for outside in ("..", "../ws2", "/etc", "a/../../x", "link", "link/x", str(tmp_path)):
        with pytest.raises(FieldError, match="F: .* is outside the workspace"):
            workspace.path(outside, "F")
    for unsafe in ("a b", "${oc.env:HF_TOKEN}", "x=y", "a,b", ".git", "d/.hidden", "-rf", "~", "a'b", ".", ""):
        with pytest.raises(FieldError, match="^F: "):
            workspace.path(unsafe, "F")
    first = workspace.new_run_dir()
    first.mkdir(parents=True)
    second = workspace.new_run_dir()
    assert first.parent == second.parent == workspace.root / "outputs" / "app" and second.name.startswith(first.name)
    assert second != first


@pytest.fixture(scope="session")  # a shared run (conftest.SHARED_RUNS): built once per worker
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    run_dir = tmp / "outputs" / "app" / "run"
    run_train(
        [
            *FAST,
            "method=lora",
            "trainer.max_steps=2",
            "trainer.save_steps=2",
            "trainer.eval_steps=2",
            "tracking.enabled=false",
            "evaluation.max_new_tokens=3",
            f"hydra.run.dir={run_dir}",
        ],
        tmp / "trackio",
    )
    return tmp, run_dir


def test_try_and_results_use_a_finished_run(finished_run):
    workdir, run_dir = finished_run
    assert Workspace(workdir.resolve()).runs() == ["outputs/app/run"]
    text = run_results(run_dir)
    assert "completed" in text and "**WER**" in text and "| reference | hypothesis |" in text
    clip = str(SAMPLE / "audio" / "en_00.flac")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxtral_exp.transcribe",
            str(run_dir),
            clip,
            "--language",
            "en",
            "--max-new-tokens",
            "128",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert transcribe_clip(str(run_dir), clip, "en") == out.stdout.split("\t", 1)[1].strip()  # the command's transcript
    with pytest.raises(ValueError, match="record a clip"):
        transcribe_clip(str(run_dir), None, "en")


def test_demo_space_loads_the_model_from_its_repo_and_push_never_changes_final(finished_run, tmp_path):
    _, run_dir = finished_run
    final = run_dir / "final"
    before = {p: p.read_bytes() for p in final.rglob("*") if p.is_file()}
    files = space_files(dict(load_run_config(run_dir)), str(final))  # the model repo, here a local copy
    assert set(files) == {"app.py", "requirements.txt"} and "peft" in files["requirements.txt"]
    namespace = {"__name__": "space"}
    exec(compile(files["app.py"], "app.py", "exec"), namespace)  # what the Space runs, without launching
    clip = str(SAMPLE / "audio" / "en_00.flac")
    assert namespace["transcribe"](clip, "en") == transcribe_clip(str(run_dir), clip, "en")  # as the app transcribes
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxtral_exp.push",
            str(run_dir),
            "--repo-id",
            "me/model",
            "--space",
            "me/demo",
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "to the private Space me/demo" in out.stdout and "app.py" in out.stdout and "requirements.txt" in out.stdout
    assert {p: p.read_bytes() for p in final.rglob("*") if p.is_file()} == before


def push(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m voxtral_exp.push ARGS` with a fake token in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "voxtral_exp.push", *args],
        cwd=ROOT,
        env={**os.environ, "HF_TOKEN": "hf_NeverShownToken", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_push_takes_only_a_runs_model_files_private_unless_public_and_fails_clearly_offline(finished_run, tmp_path):
    _, original = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    final = run_dir / "final"
    for name in (".env", ".git/config", "notes.txt", "base_model/.hidden", "merged/model.safetensors"):
        (final / name).parent.mkdir(parents=True, exist_ok=True)
        (final / name).write_text("HF_TOKEN=hf_NeverShownToken\n")
    out = push(str(run_dir), "--repo-id", "me/model", "--dry-run")
    assert out.returncode == 0, out.stderr[-2000:]
    header, *lines = out.stdout.splitlines()
    assert "to the private model repository me/model:" in header
    assert [line.strip() for line in lines] == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "base_model/config.json",
        "base_model/generation_config.json",
        "base_model/model.safetensors",
        "processor_config.json",
        "tekken.json",
    ]
    public = push(str(final), "--repo-id", "me/model", "--public", "--dry-run")
    assert "to the public model repository me/model:" in public.stdout
    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "README.md").write_text("# not a run\n")
    for folder in (ROOT, tmp_path / "card", run_dir / "final" / "base_model"):
        refused = push(str(folder), "--repo-id", "me/model", "--dry-run")
        assert refused.returncode == 1 and "is not a finished voxtral_exp run" in refused.stderr
        assert "would upload" not in refused.stdout and "Traceback" not in refused.stderr
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: a connection error, as offline
    for env in ({"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": closed}):
        offline = push(str(run_dir), "--repo-id", "me/model", env=env)
        assert offline.returncode == 1 and "Traceback" not in offline.stderr, offline.stderr[-2000:]
        assert offline.stderr.startswith("error: could not publish to the Hub") and "--dry-run" in offline.stderr
    assert not any("hf_NeverShownToken" in p.stdout + p.stderr for p in (out, public, refused, offline))


def test_push_refuses_a_symbolic_link_in_what_it_uploads_and_its_dry_run_lists_what_it_sends(finished_run, tmp_path):
    _, original = finished_run
    secret = tmp_path / "token"
    secret.write_text("hf_SecretBehindALink\n")
    elsewhere = tmp_path / "elsewhere"  # another run's final/, or any folder
    shutil.copytree(original / "final", elsewhere)
    copies = iter(range(10))

    def run_with(link: str, target: Path) -> Path:
        run_dir = tmp_path / f"run{next(copies)}"
        shutil.copytree(original, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
        if link:
            shutil.rmtree(run_dir / link) if (run_dir / link).is_dir() else (run_dir / link).unlink()
            (run_dir / link).symlink_to(target)
        return run_dir

    run_dir = run_with("", secret)  # no link: the dry run prints the very list the upload sends
    final = run_dir / "final"
    model = model_upload(final, "me/model")
    dry = push(str(run_dir), "--repo-id", "me/model", "--dry-run")
    assert [line.strip() for line in dry.stdout.splitlines()[1:]] == list(model) == model_files(final)
    assert '"me/model"' in model.pop("README.md").decode()  # the card, naming its repository
    assert all(p.parent in (final, final / "base_model") and not p.is_symlink() for p in model.values())

    for link, target in [
        ("final/README.md", secret),  # the card: a token file's content would be the model card
        ("final/adapter_model.safetensors", secret),
        ("final", elsewhere),  # another run's model, uploaded as this run's
        ("final/base_model", elsewhere),
    ]:
        run_dir = run_with(link, target)
        for path in (run_dir, run_dir / "final"):
            refusal = f"{run_dir / link} is a symbolic link (to {target}): only a run's own files are published"
            with pytest.raises(LinkError, match="^" + re.escape(refusal)):
                push_main([str(path), "--repo-id", "me/model", "--dry-run"])
    closed = f"http://127.0.0.1:{free_port()}"  # the upload is refused before any network: nothing listens
    real = push(str(run_dir), "--repo-id", "me/model", env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": closed})
    assert real.returncode == 1 and real.stderr.startswith(f"error: {run_dir}/final/base_model is a symbolic link")
    real = push(
        str(run_with("final/README.md", secret)),
        "--repo-id",
        "me/model",
        env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": closed},
    )
    assert real.returncode == 1 and "README.md is a symbolic link" in real.stderr and "Traceback" not in real.stderr
    assert "hf_SecretBehindALink" not in dry.stdout + real.stdout + real.stderr


# --- the whole app in a real browser ---------------------------------------------------------

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)
def test_the_app_in_a_headless_browser_builds_a_dataset_trains_transcribes_and_publishes(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("VOXTRAL_EXP_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    workspace = tmp_path / "workspace"
    app, port = start_app(
        ["--workdir", str(workspace)], tmp_path / "app.log", env={"TRACKIO_DIR": str(tmp_path / "trackio")}
    )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1700",
    ):
        options.add_argument(flag)
    browser = None
    try:
        browser = webdriver.Chrome(service=Service(DRIVER), options=options)
        wait = WebDriverWait(browser, 240)
        browser.get(f"http://127.0.0.1:{port}/")
        css = lambda selector: browser.find_element(By.CSS_SELECTOR, selector)  # noqa: E731
        tab = lambda name: browser.find_element(By.XPATH, f"//button[@role='tab'][normalize-space()='{name}']")  # noqa: E731

        # Dataset: upload three clips (an upload stands in for the microphone), save the manifests
        uploaded = lambda component: "upload-container" not in css(component).get_attribute("innerHTML")  # noqa: E731
        for i, row in enumerate(sample_rows("train")[:3]):
            wait.until(lambda b: not uploaded("#clip-audio"))  # the component is empty again
            css("#clip-audio input[type=file]").send_keys(row["audio_path"])
            wait.until(lambda b: uploaded("#clip-audio"))
            css("#transcript textarea").clear()
            css("#transcript textarea").send_keys(row["text"])
            language = css("#language textarea")
            language.clear()
            language.send_keys(row["language"])
            css("#add-clip").click()
            wait.until(lambda b, i=i: f"Added clip {i} " in css("#dataset-message").text)
        css("#save-manifests").click()
        wait.until(lambda b: "Saved" in css("#saved").text)
        browser.save_screenshot(str(shots / "dataset.png"))
        dataset = workspace / "datasets" / "my-speech"
        assert sum(len(read_jsonl(dataset / name)) for name in ("train.jsonl", "eval.jsonl")) == 3

        # Train: a 4-step run of the tiny model on that folder, watched to the end
        tab("Train").click()
        steps = css("#steps input")
        steps.clear()
        steps.send_keys("4")
        wait.until(lambda b: "trainer.max_steps=4" in css("#command textarea").get_attribute("value"))
        css("#start").click()
        wait.until(lambda b: "Finished" in css("#status").text)
        wait.until(lambda b: "WER" in css("#results").text)
        browser.save_screenshot(str(shots / "train.png"))
        runs = list((workspace / "outputs" / "app").iterdir())
        assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["status"] == "completed"
        status = css("#status").text
        assert "Finished (completed)" in status and "4/4 steps" in status
        assert Path(css("#status code").text) == runs[0]  # the status names the run it watched
        run = runs[0].relative_to(workspace).as_posix()

        # Try: the run, picked from the refreshed list, transcribes an uploaded clip
        tab("Try").click()
        css("#refresh").click()
        css("#try-run input").click()
        option = f"#try-run li[data-testid=dropdown-option][aria-label='{run}']"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, option))
        css(option).click()
        css("#try-audio input[type=file]").send_keys(sample_rows("eval")[0]["audio_path"])
        wait.until(lambda b: uploaded("#try-audio"))
        css("#transcribe").click()
        wait.until(lambda b: css("#transcript-out textarea").get_attribute("value"))
        browser.save_screenshot(str(shots / "try.png"))

        # Publish: a dry run of the run's model repository (private: Public is unticked)
        tab("Publish").click()
        css("#publish-run input").click()
        option = f"#publish-run li[data-testid=dropdown-option][aria-label='{run}']"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, option))
        css(option).click()
        css("#repo-id textarea").send_keys("you/voxtral-demo")
        css("#publish").click()
        wait.until(lambda b: "would upload" in css("#publish-out textarea").get_attribute("value"))
        assert "to the private model repository you/voxtral-demo" in css("#publish-out textarea").get_attribute("value")
        browser.save_screenshot(str(shots / "publish.png"))
    finally:
        if browser is not None:
            browser.quit()
        stop_app(app)


def test_nothing_in_the_training_path_imports_the_app():
    code = "import sys; sys.path.insert(0, '.'); import train, voxtral_exp.training.recipe; print(sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'selenium') or m.startswith('voxtral_exp.app')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_a_restarted_app_takes_up_its_most_recent_run_whatever_became_of_it(tmp_path):
    workspace = Workspace.create(tmp_path / "ws")
    assert workspace.last_app_run() is None
    runs = workspace.root / "outputs" / "app"
    older, newer, unstarted = (runs / f"2026-12-0{day}_00-00-00" for day in (1, 2, 3))
    for run, status in ((older, "interrupted"), (newer, "running")):
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"status": status}))
    unstarted.mkdir()  # train.py never wrote its record
    os.utime(older / "run.json", (1e9, 1e9))
    outside = tmp_path / "outside"  # the newest record, but out of the workspace through a link: never taken up
    outside.mkdir()
    (outside / "run.json").write_text(json.dumps({"status": "interrupted"}))
    (runs / "2026-12-04_00-00-00").symlink_to(outside, target_is_directory=True)
    assert workspace.last_app_run() == newer  # the most recently active run
    job = TrainingJob(workspace.last_app_run())

    # its record says running and no process holds it: killed mid-run
    status, _, results, timer = watch(job)
    assert status.startswith("**Stopped without recording its end** (killed?)") and not timer.active
    assert "Resume it with Resume" in results and job.stop() == "No run in progress."

    # still trained by the process an earlier app started (it outlives the app): shown, never doubled, stoppable
    with lock_held_elsewhere(newer) as pid:
        status, *_, timer = watch(job)
        assert status.startswith(f"**Training** (PID {pid}, started before this app)") and timer.active
        with pytest.raises(RuntimeError, match=f"{newer} is still training"):
            job.start(["true"], workspace.new_run_dir())  # Start and Resume
        # a .lock rewritten to name another process (forged, or its PID reused): Stop signals nothing
        genuine, unrelated = (newer / ".lock").read_text(), subprocess.Popen(["sleep", "60"])
        try:
            for named in (unrelated.pid, 0, -1):  # 0 and -1: the app's process group, every process
                (newer / ".lock").write_text(json.dumps({**json.loads(genuine), "pid": named}))
                assert job.stop().startswith(f"Not stopped: {newer}/.lock names PID {named}, which is not that run's")
            with pytest.raises(subprocess.TimeoutExpired):
                unrelated.wait(timeout=0.5)  # no Ctrl-C reached it
        finally:
            unrelated.kill()
            unrelated.wait()
        (newer / ".lock").write_text(genuine)
        assert job.stop().startswith("Stopping (Ctrl-C sent)")
        wait_for(lambda: job.earlier_process() is None, timeout=30, what="the earlier process to stop")
    assert job.stop() == "No run in progress."


def test_stop_is_ctrl_c_the_run_is_interrupted_and_resumable(tmp_path):
    from voxtral_exp.training.checkpoints import last_complete_checkpoint

    workspace = Workspace.create(tmp_path / "ws")
    shutil.copytree(SAMPLE, workspace.root / "sample")
    run_dir = workspace.new_run_dir()
    form = TrainForm.parse(workspace, "tiny", "lora", "manifest", "sample/train.jsonl", 1e-3, 100, 8, 32, 2)
    command = form.command(run_dir)
    job = TrainingJob()
    # started as a script's background job (`python -m voxtral_exp.app &`) is: SIGINT ignored, which
    # the run inherits; Stop must still stop it
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job.start([*command, "hardware=cpu", "tracking.enabled=false", "trainer.dataloader_num_workers=0"], run_dir)
    finally:
        signal.signal(signal.SIGINT, ignored)
    deadline = time.time() + 300
    while not (run_dir / "checkpoints" / "checkpoint-20" / "trainer_state.json").exists():
        assert job.running() and time.time() < deadline, job.log()[-3000:]
        time.sleep(0.2)
    with pytest.raises(RuntimeError, match="a run is in progress"):
        job.start(command, run_dir)  # one run at a time
    assert job.progress()["max_steps"] == 100 and job.progress()["step"] >= 20  # from run.json
    job.stop()
    assert job.process.wait(timeout=120) == 130  # as a shell reports Ctrl-C
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    newest = last_complete_checkpoint(run_dir / "checkpoints")  # Resume has something to continue
    assert newest is not None and "Traceback" not in job.log()
    assert f"`python -m voxtral_exp.resume {run_dir}` continues it from {newest.name}" in job.log()
    assert "Resume it with Resume" in run_results(run_dir)

    # the app is restarted: its Train tab shows that run, and Resume finishes it, keeping its log
    page = {f.api_name: f.fn for f in build(workspace).fns.values()}
    assert page["status"]()[0].startswith("**Last run** (interrupted, started before this app)")
    restarted = TrainingJob(workspace.last_app_run())
    assert restarted.run_dir == run_dir
    first_attempt = restarted.log()
    resume(restarted)
    restarted.process.wait(timeout=300)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed", restarted.log()[-3000:]
    assert (run_dir / "final").is_dir() and restarted.log().startswith(first_attempt)
    assert watch(restarted)[0].startswith("**Finished** (completed)")
