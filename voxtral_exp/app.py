"""The web app: record a dataset, launch and watch a run, try a model, publish a demo.

    python -m voxtral_exp.app [--host 127.0.0.1] [--port 7860] [--workdir DIR]

Four tabs on top of the framework, each doing what a command does:
- Dataset: record or upload clips, type or correct their transcripts and languages, listen to
  and delete them; save train.jsonl / eval.jsonl in the format `dataset=jsonl` reads
  (voxtral_exp.data.recordings).
- Train: pick model, method, data and the common knobs; the exact `python train.py ...` command is
  shown, then run as a subprocess (one at a time) whose log and progress stream in; Stop is
  Ctrl-C (the run is recorded as interrupted and resumes with Resume); a finished run shows its
  WER/CER and predictions. The trackio dashboard opens from here.
- Try: transcribe a recording or upload with a run's model (or a Hub id), through the code path of
  `python -m voxtral_exp.transcribe`.
- Publish: `python -m voxtral_exp.push` for a model repo and a Gradio demo Space (dry run offline).

Binds to localhost unless --host says otherwise. Nothing in the training path imports this module.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from voxtral_exp.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["tiny", "tiny-whisper", "voxtral-mini-3b", "voxtral-small-24b"]
SOURCES = ["recorded folder", "manifest", "Hub dataset"]
PROGRESS = re.compile(r"Progress <step (\d+)/(\d+)")


# --- Train --------------------------------------------------------------------------------------


def train_command(
    model: str,
    method: str,
    source: str,
    data: str,
    learning_rate: float,
    steps: int,
    r: int,
    alpha: int,
    batch_size: int,
    run_dir: Path,
) -> list[str]:
    """The `python train.py ...` argument list for the form's choices (checkpoints every fifth of
    the steps, so that a stopped run can be resumed)."""
    if not data:
        raise ValueError("choose the training data: a recorded folder, a manifest or a Hub dataset id")
    args = [f"model={model}", f"method={method}"]
    if source == "recorded folder":
        folder = Path(data).expanduser()
        args += [
            "dataset=jsonl",
            f"dataset.train_manifest={folder / 'train.jsonl'}",
            f"dataset.eval_manifest={folder / 'eval.jsonl'}",
        ]
    elif source == "manifest":
        args += ["dataset=jsonl", f"dataset.train_manifest={Path(data).expanduser()}", "dataset.eval_manifest=null"]
    else:
        args += ["dataset=hub", f"dataset.path={data}"]
    if method == "lora":
        args += [f"method.r={int(r)}", f"method.alpha={int(alpha)}"]
    steps = int(steps)
    every = max(1, steps // 5)
    args += [
        f"trainer.learning_rate={learning_rate:g}",
        f"trainer.max_steps={steps}",
        f"trainer.per_device_train_batch_size={int(batch_size)}",
        f"trainer.save_steps={every}",
        f"trainer.eval_steps={every}",
        f"trainer.logging_steps={every}",
        f"hydra.run.dir={run_dir}",
    ]
    return [sys.executable, str(ROOT / "train.py"), *args]


def shown(command: list[str]) -> str:
    """A command as the user would type it."""
    words = ["python", *[Path(w).name if w.endswith("train.py") else w for w in command[1:]]]
    return shlex.join(words)


class TrainingJob:
    """The one training subprocess the app runs at a time; its output goes to <run dir>/app.log."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.run_dir: Path | None = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: list[str], run_dir: Path) -> None:
        if self.running():
            raise RuntimeError(f"a run is in progress ({self.run_dir}): stop it or wait for it")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        with open(run_dir / "app.log", "w", encoding="utf-8") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def stop(self) -> None:
        """Ctrl-C for the run (SIGINT to its process group): it records itself as interrupted."""
        if self.running():
            os.killpg(self.process.pid, signal.SIGINT)

    def log(self) -> str:
        path = self.run_dir / "app.log" if self.run_dir else None
        return path.read_text(encoding="utf-8", errors="replace") if path and path.exists() else ""

    def progress(self) -> tuple[int, int] | None:
        found = PROGRESS.findall(self.log())
        return (int(found[-1][0]), int(found[-1][1])) if found else None


def run_results(run_dir: Path, n: int = 5) -> str:
    """A finished (or stopped) run in words: status, WER/CER, a few predictions."""
    record = run_dir / "run.json"
    if not record.exists():
        return f"{run_dir}: no run record yet"
    run = json.loads(record.read_text())
    lines = [f"**Run** `{run_dir}`: {run.get('status')}"]
    results = run_dir / "eval_results.json"
    if results.exists():
        metrics = json.loads(results.read_text())
        if "eval_wer" in metrics:
            lines.append(
                f"**WER** {metrics['eval_wer']:.3f} · **CER** {metrics['eval_cer']:.3f} "
                f"· eval loss {metrics.get('eval_loss', float('nan')):.3f}"
            )
    predictions = run_dir / "predictions.jsonl"
    if predictions.exists():
        lines.append("| reference | hypothesis |\n| --- | --- |")
        for line in predictions.read_text(encoding="utf-8").splitlines()[:n]:
            p = json.loads(line)
            lines[-1] += f"\n| {p['reference']} | {p['hypothesis']} |"
    if run.get("status") in ("interrupted", "failed"):
        lines.append(f"Resume it with Resume, or `python -m voxtral_exp.resume {run_dir}`")
    return "\n\n".join(lines)


# --- Try ----------------------------------------------------------------------------------------


def find_runs(workdir: Path = ROOT) -> list[str]:
    """Run directories under outputs/ and multirun/ that hold a final model, newest first."""
    found = [
        p.parent
        for top in ("outputs", "multirun")
        for p in (workdir / top).glob("**/final")
        if (p / "config.json").exists() or (p / "adapter_config.json").exists()
    ]
    return [str(p) for p in sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)]


_models: dict[str, tuple] = {}


def transcribe_clip(model: str, audio: str | None, language: str | None) -> str:
    """The transcript of one clip with ``model`` (run directory, final/ or Hub id): the code path
    of `python -m voxtral_exp.transcribe`; loaded models are kept for the next clip."""

    from voxtral_exp.data.audio import load_audio
    from voxtral_exp.data.languages import language_code
    from voxtral_exp.inference import load, transcribe

    if not model:
        raise ValueError("pick a run (or type a Hub model id) first")
    if not audio:
        raise ValueError("record a clip or upload a file first")
    if model not in _models:
        _models.clear()  # one model in memory at a time
        _models[model] = load(model)
    loaded, featurizer = _models[model]
    return transcribe(loaded, featurizer, [load_audio(audio)], [language_code(language)], max_new_tokens=128)[0]


# --- Publish ------------------------------------------------------------------------------------


def push_command(run_dir: str, repo_id: str, space: str, private: bool, dry_run: bool) -> list[str]:
    if not run_dir:
        raise ValueError("pick a run to publish")
    if not repo_id:
        raise ValueError("type the model repo id, e.g. you/voxtral-fr")
    command = [sys.executable, "-m", "voxtral_exp.push", run_dir, "--repo-id", repo_id]
    command += (["--space", space] if space else []) + (["--private"] if private else [])
    return command + (["--dry-run"] if dry_run else [])


# --- the interface ------------------------------------------------------------------------------


def build(workdir: Path) -> "gradio.Blocks":  # noqa: F821
    import gradio as gr

    from voxtral_exp.data.recordings import RecordedDataset, read_prompts

    job = TrainingJob()

    def table(folder: str) -> list[list]:
        return [[c["id"], c["text"], c["language"], c["duration"]] for c in RecordedDataset(folder).clips()]

    def add_clip(folder, audio, text, language):
        try:
            clip = RecordedDataset(folder).add(audio, text, language)
        except UserError as e:
            raise gr.Error(str(e)) from None
        return table(folder), f"Added clip {clip['id']} ({clip['duration']:.1f} s).", None, ""

    def select_clip(folder, event: gr.SelectData):
        row = table(folder)[event.index[0]]
        clip = next(c for c in RecordedDataset(folder).clips() if c["id"] == row[0])
        return row[0], str(RecordedDataset(folder).folder / clip["audio_path"]), clip["text"], clip["language"]

    def update_clip(folder, clip_id, text, language):
        try:
            RecordedDataset(folder).update(int(clip_id), text, language)
        except (UserError, TypeError, ValueError) as e:
            raise gr.Error(str(e)) from None
        return table(folder), f"Saved clip {int(clip_id)}."

    def delete_clip(folder, clip_id):
        try:
            RecordedDataset(folder).delete(int(clip_id))
        except (UserError, TypeError, ValueError) as e:
            raise gr.Error(str(e)) from None
        return table(folder), f"Deleted clip {int(clip_id)}.", None

    def save(folder, fraction):
        try:
            train, evaluation = RecordedDataset(folder).write_manifests(float(fraction))
        except UserError as e:
            raise gr.Error(str(e)) from None
        n_train, n_eval = (len(p.read_text().splitlines()) for p in (train, evaluation))
        return f"Saved {train} ({n_train} clips) and {evaluation} ({n_eval} clips).", folder

    def load_prompts(file):
        try:
            prompts = read_prompts(file) if file else []
        except UserError as e:
            raise gr.Error(str(e)) from None
        return prompts, 0, (prompts[0] if prompts else "")

    def next_prompt(prompts, index):
        if not prompts:
            return 0, ""
        index = (int(index) + 1) % len(prompts)
        return index, prompts[index]

    def command_of(*form):
        try:
            return shown(train_command(*form, run_dir=next_run_dir()))
        except ValueError as e:
            return f"({e})"

    def next_run_dir() -> Path:
        return workdir / "outputs" / "app" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")

    def start(*form):
        run_dir = next_run_dir()
        try:
            command = train_command(*form, run_dir=run_dir)
            job.start(command, run_dir)
        except (UserError, ValueError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        yield from watch(shown(command))

    def watch(command_text: str):
        while True:
            done = not job.running()
            step = job.progress()
            fraction = f"{step[0]}/{step[1]} steps" if step else "starting"
            status = f"**{'Finished' if done else 'Training'}** · {fraction} · `{job.run_dir}`"
            if step and step[1]:
                status += f" · {100 * step[0] // step[1]}%"
            yield command_text, status, job.log()[-6000:], run_results(job.run_dir) if done else ""
            if done:
                return
            time.sleep(1.0)

    def stop():
        job.stop()
        return "Stopping (Ctrl-C sent): the run records itself as interrupted."

    def resume():
        if job.run_dir is None:
            raise gr.Error("no run to resume")
        try:
            job.start([sys.executable, "-m", "voxtral_exp.resume", str(job.run_dir)], job.run_dir)
        except RuntimeError as e:
            raise gr.Error(str(e)) from None
        yield from watch(f"python -m voxtral_exp.resume {job.run_dir}")

    def dashboard():
        import trackio

        url = trackio.show(project="voxtral_exp", open_browser=False, block_thread=False)
        return f"[Open the trackio dashboard]({url if isinstance(url, str) else url[0]})"

    def try_model(run, hub_id, audio, language):
        try:
            return transcribe_clip(hub_id.strip() or run, audio, language) or "(the model returned an empty transcript)"
        except (UserError, ValueError, OSError) as e:
            raise gr.Error(str(e)) from None

    def publish(run, repo_id, space, private, dry_run):
        try:
            command = push_command(run, repo_id, space, private, dry_run)
        except ValueError as e:
            raise gr.Error(str(e)) from None
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        return f"$ {shlex.join(['python', *command[1:]])}\n{proc.stdout}{proc.stderr[-3000:]}"

    with gr.Blocks(title="voxtral_exp") as app:
        gr.Markdown("# voxtral_exp: fine-tune Voxtral on your speech")
        with gr.Tab("Dataset"):
            folder = gr.Textbox(str(workdir / "datasets" / "my-speech"), label="Dataset folder", elem_id="folder")
            with gr.Row():
                prompts_file = gr.File(
                    label="Prompts to read (text file, one per line)", type="filepath", elem_id="prompts"
                )
                prompt = gr.Textbox(label="Read this", interactive=False)
                next_button = gr.Button("Next prompt")
            prompts, prompt_index = gr.State([]), gr.State(0)
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Upload or record a clip", elem_id="clip-audio"
            )
            with gr.Row():
                transcript = gr.Textbox(label="Transcript", elem_id="transcript")
                language = gr.Textbox("en", label="Language (ISO 639-1)", elem_id="language")
            add_button = gr.Button("Add clip", variant="primary", elem_id="add-clip")
            message = gr.Markdown(elem_id="dataset-message")
            clips = gr.Dataframe(
                headers=["id", "transcript", "language", "seconds"],
                interactive=False,
                label="Clips (select one to listen, correct or delete it)",
            )
            with gr.Row():
                clip_id = gr.Number(label="Clip", precision=0)
                clip_audio = gr.Audio(label="Listen", interactive=False)
                clip_text, clip_language = gr.Textbox(label="Transcript"), gr.Textbox(label="Language")
            with gr.Row():
                update_button, delete_button = gr.Button("Save correction"), gr.Button("Delete clip", variant="stop")
            with gr.Row():
                fraction = gr.Slider(0.05, 0.5, value=0.2, step=0.05, label="Eval fraction")
                save_button = gr.Button("Save train.jsonl / eval.jsonl", elem_id="save-manifests")
            saved = gr.Markdown(elem_id="saved")
        with gr.Tab("Train"):
            with gr.Row():
                model = gr.Dropdown(MODELS, value="tiny", label="Model")
                method = gr.Radio(["lora", "full"], value="lora", label="Method")
            with gr.Row():
                source = gr.Radio(SOURCES, value="recorded folder", label="Data")
                data = gr.Textbox(
                    str(workdir / "datasets" / "my-speech"), label="Folder, manifest or Hub id", elem_id="train-data"
                )
            with gr.Row():
                learning_rate = gr.Number(1e-3, label="Learning rate")
                steps = gr.Number(60, label="Steps", precision=0, elem_id="steps")
                r = gr.Number(8, label="LoRA r", precision=0)
                alpha = gr.Number(32, label="LoRA alpha", precision=0)
                batch_size = gr.Number(4, label="Batch size", precision=0)
            form = [model, method, source, data, learning_rate, steps, r, alpha, batch_size]
            command = gr.Textbox(label="Command", interactive=False, elem_id="command")
            with gr.Row():
                start_button = gr.Button("Start", variant="primary", elem_id="start")
                stop_button, resume_button = gr.Button("Stop (Ctrl-C)"), gr.Button("Resume")
                dashboard_button = gr.Button("Open the trackio dashboard")
            status = gr.Markdown(elem_id="status")
            link = gr.Markdown()
            log = gr.Textbox(label="Log", lines=14, max_lines=14, autoscroll=True, interactive=False)
            results = gr.Markdown(elem_id="results")
        with gr.Tab("Try"):
            with gr.Row():
                run = gr.Dropdown(find_runs(workdir), label="Run", allow_custom_value=True, elem_id="try-run")
                refresh = gr.Button("Refresh runs", elem_id="refresh")
                hub_id = gr.Textbox("", label="…or a Hub model id")
            try_audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Upload or record", elem_id="try-audio"
            )
            try_language = gr.Textbox("", label="Language (empty: the model detects it)")
            try_button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
            transcript_out = gr.Textbox(label="Transcript", elem_id="transcript-out")
        with gr.Tab("Publish"):
            publish_run = gr.Dropdown(find_runs(workdir), label="Run", allow_custom_value=True)
            with gr.Row():
                repo_id = gr.Textbox(label="Model repo", placeholder="you/voxtral-fr")
                space = gr.Textbox(label="Demo Space (optional)", placeholder="you/voxtral-fr-demo")
            with gr.Row():
                private, dry_run = gr.Checkbox(label="Private"), gr.Checkbox(True, label="Dry run (list files only)")
            publish_button = gr.Button("Publish", variant="primary")
            gr.Markdown("The token comes from `HF_TOKEN` or `hf auth login`; it is never shown, logged or saved.")
            publish_out = gr.Textbox(label="Output", lines=10)

        app.load(table, folder, clips)
        folder.change(table, folder, clips)
        prompts_file.change(load_prompts, prompts_file, [prompts, prompt_index, prompt])
        prompt.change(lambda p: p, prompt, transcript)
        next_button.click(next_prompt, [prompts, prompt_index], [prompt_index, prompt])
        add_button.click(add_clip, [folder, audio, transcript, language], [clips, message, audio, transcript])
        clips.select(select_clip, folder, [clip_id, clip_audio, clip_text, clip_language])
        update_button.click(update_clip, [folder, clip_id, clip_text, clip_language], [clips, message])
        delete_button.click(delete_clip, [folder, clip_id], [clips, message, clip_audio])
        save_button.click(save, [folder, fraction], [saved, data])
        for field in form:
            field.change(command_of, form, command)
        app.load(command_of, form, command)
        start_button.click(start, form, [command, status, log, results])
        stop_button.click(stop, None, status)
        resume_button.click(resume, None, [command, status, log, results])
        dashboard_button.click(dashboard, None, link)
        refresh.click(lambda: [gr.update(choices=find_runs(workdir))] * 2, None, [run, publish_run])
        try_button.click(try_model, [run, hub_id, try_audio, try_language], transcript_out)
        publish_button.click(publish, [publish_run, repo_id, space, private, dry_run], publish_out)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where datasets/ and outputs/ go")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    build(args.workdir.resolve()).queue().launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
