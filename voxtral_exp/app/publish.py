"""The Publish tab: `python -m voxtral_exp.push` for a run: its model repository and, optionally,
a Gradio demo Space; a dry run lists the files offline."""

from __future__ import annotations

import subprocess

import gradio as gr

from voxtral_exp.app.command import ROOT, push_command, shown
from voxtral_exp.app.errors import user_errors
from voxtral_exp.app.try_model import refresh_runs
from voxtral_exp.app.workspace import Workspace

OUTPUT_CHARS = 3000  # the end of the command's error output shown


@user_errors
def publish(workspace: Workspace, run: str, repo_id: str, space: str, public: bool, dry_run: bool) -> str:
    """Run the push command for a run in the workspace; its output (never the token) is shown."""
    command = push_command(workspace.run(run, "Run"), repo_id, space, public, dry_run)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return f"$ {shown(command)}\n{proc.stdout}{proc.stderr[-OUTPUT_CHARS:]}"


def build(page: gr.Blocks, workspace: Workspace) -> None:
    """The tab's components and events (inside ``page``)."""
    state = gr.State(workspace)
    with gr.Tab("Publish") as tab:
        run = gr.Dropdown(workspace.runs(), label="Run", allow_custom_value=True, elem_id="publish-run")
        with gr.Row():
            repo_id = gr.Textbox(label="Model repo", placeholder="you/voxtral-fr", elem_id="repo-id")
            space = gr.Textbox(label="Demo Space (optional)", placeholder="you/voxtral-fr-demo")
        with gr.Row():
            public = gr.Checkbox(False, label="Public (unticked: the repositories are private)")
            dry_run = gr.Checkbox(True, label="Dry run (list files only)")
        publish_button = gr.Button("Publish", variant="primary", elem_id="publish")
        gr.Markdown("The token comes from `HF_TOKEN` or `hf auth login`; it is never shown, logged or saved.")
        output = gr.Textbox(label="Output", lines=10, elem_id="publish-out")

    gr.on([page.load, tab.select], refresh_runs, state, run)
    publish_button.click(publish, [state, run, repo_id, space, public, dry_run], output)
