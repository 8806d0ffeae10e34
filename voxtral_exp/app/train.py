"""The Train tab: model, method, data and the common knobs; the exact `python train.py ...`
command is shown, then run as a subprocess (one at a time: job.py) whose status, progress and log
refresh on a timer while it runs. Stop is Ctrl-C; Resume continues a stopped run, also one
started before the app was restarted."""

from __future__ import annotations

import sys
from functools import cache, partial
from urllib.parse import urlsplit

import gradio as gr

from voxtral_exp.app.command import DATA, METHODS, MODELS, SOURCES, TrainForm, shown
from voxtral_exp.app.dataset import DatasetTab
from voxtral_exp.app.errors import FieldError, user_errors
from voxtral_exp.app.job import TrainingJob, run_results
from voxtral_exp.app.workspace import DEFAULT_DATASET, Workspace
from voxtral_exp.errors import UserError

LOG_CHARS = 6000  # the end of the log shown
PROJECT = "voxtral_exp"  # the trackio project runs log to (conf/tracking: project)


def command_of(workspace: Workspace, *form) -> str:
    """The command Start would run, or why it cannot run yet."""
    try:
        return shown(TrainForm.parse(workspace, *form).command(workspace.new_run_dir()))
    except FieldError as e:
        return f"({e})"


@user_errors
def start(job: TrainingJob, workspace: Workspace, *form) -> tuple[str, str, str, str, gr.Timer]:
    """Check the form, then run its command in a new run directory of the workspace."""
    command = TrainForm.parse(workspace, *form).command(run_dir := workspace.new_run_dir())
    job.start(command, run_dir)
    return shown(command), *watch(job)


def watch(job: TrainingJob) -> tuple[str, str, str, gr.Timer]:
    """The run's status and progress (from its run.json), its log, and its results once it has
    ended; the timer that calls this again stops when the run has ended."""
    if job.run_dir is None:
        return "", "", "", gr.Timer(active=False)
    earlier = job.earlier_process()
    done, progress, recorded = not (job.running() or earlier), job.progress(), job.record().get("status")
    if earlier:
        status = f"**Training** (PID {earlier.get('pid', '?')}, started before this app)"
    elif not done:
        status = "**Training**"
    elif recorded == "running":  # no process holds it: killed (SIGKILL, out of memory, power) mid-run
        status = "**Stopped without recording its end** (killed?); Resume continues it from its newest checkpoint"
    elif job.process:
        status = f"**Finished** ({recorded or 'no run record'})"
    else:
        status = f"**Last run** ({recorded or 'no run record'}, started before this app)"
    if progress:
        step, total = progress["step"], progress["max_steps"]
        status += f" · {step}/{total} steps · {100 * step // max(1, total)}%"
        status += "" if done else f" · ETA {progress['eta_s']:.0f} s"
    else:
        status += " · starting" if not done else ""
    status += f" · `{job.run_dir}`"
    return status, job.log()[-LOG_CHARS:], run_results(job.run_dir) if done else "", gr.Timer(active=not done)


def stop(job: TrainingJob) -> str:
    """Ctrl-C for the run in progress."""
    return job.stop()


@user_errors
def resume(job: TrainingJob) -> tuple[str, str, str, str, gr.Timer]:
    """Continue the last run (this app's or, after a restart, the earlier app's) from its newest
    checkpoint (`python -m voxtral_exp.resume`)."""
    if job.run_dir is None:
        raise FieldError("no run to resume")
    command = [sys.executable, "-m", "voxtral_exp.resume", str(job.run_dir)]
    job.start(command, job.run_dir)  # refused while the run still trains, this app's or an earlier one's
    return shown(command), *watch(job)


@user_errors
def dashboard() -> str:
    """A link to the project's trackio dashboard (started with the first click), and where it can
    be opened: it has no login of its own, so it is served on this machine only."""
    url = dashboard_url()
    port = urlsplit(url).port
    return (
        f"[Open the trackio dashboard]({url}): read-only, without a login, on 127.0.0.1 (this machine only, "
        f"whatever the app's --host). From another machine: `ssh -L {port}:127.0.0.1:{port} <this server>`, "
        "then open the link."
    )


@cache  # one dashboard for the app's lifetime
def dashboard_url() -> str:
    """Start trackio's dashboard for the project on 127.0.0.1 (never the app's --host, nor a share
    link: GRADIO_SERVER_NAME and GRADIO_SHARE are not obeyed) and return its URL. trackio takes the
    first free port from 7860 (past the app's own); the URL is the one it reports."""
    import trackio

    try:
        _, local_url, _, _ = trackio.show(
            project=PROJECT, open_browser=False, block_thread=False, host="127.0.0.1", share=False
        )
    except (OSError, RuntimeError) as e:  # no free port, or the server did not answer
        raise UserError(f"the trackio dashboard did not start ({e}); run `trackio show --project {PROJECT}`") from None
    return f"{local_url.rstrip('/')}/?project={PROJECT}"


def use_folder(folder: str) -> str:
    """A saved dataset folder becomes the training data."""
    return folder


def build(page: gr.Blocks, workspace: Workspace, job: TrainingJob, dataset: DatasetTab) -> None:
    """The tab's components and events (inside ``page``); ``job`` is the app's one training job."""
    space = gr.State(workspace)
    with gr.Tab("Train"):
        with gr.Row():
            model = gr.Dropdown(MODELS, value="tiny", label="Model")
            method = gr.Radio(METHODS, value="lora", label="Method")
        with gr.Row():
            source = gr.Radio(SOURCES, value="recorded folder", label="Data")
            data = gr.Textbox(DEFAULT_DATASET, label=DATA, elem_id="train-data")
        with gr.Row():
            learning_rate = gr.Number(1e-3, label="Learning rate", minimum=1e-8, maximum=1.0)
            steps = gr.Number(60, label="Steps", precision=0, minimum=1, maximum=1_000_000, elem_id="steps")
            r = gr.Number(8, label="LoRA r", precision=0, minimum=1, maximum=1024)
            alpha = gr.Number(32, label="LoRA alpha", precision=0, minimum=1, maximum=4096)
            batch_size = gr.Number(4, label="Batch size", precision=0, minimum=1, maximum=1024)
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
        timer = gr.Timer(1.0, active=False)
        watched = [status, log, results, timer]

    dataset.saved.success(use_folder, dataset.folder, data)
    gr.on([page.load, *(field.change for field in form)], command_of, [space, *form], command)
    page.load(partial(watch, job), None, watched, api_name="status")
    timer.tick(partial(watch, job), None, watched, api_name="watch", show_progress="hidden")
    start_button.click(partial(start, job), [space, *form], [command, *watched], api_name="start")
    stop_button.click(partial(stop, job), None, status, api_name="stop")
    resume_button.click(partial(resume, job), None, [command, *watched], api_name="resume")
    dashboard_button.click(dashboard, None, link, api_name="dashboard")
