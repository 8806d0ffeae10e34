"""The app's one page: a title and the four tabs, in the order a user goes through them."""

from __future__ import annotations

import gradio as gr

from voxtral_exp.app import dataset, publish, train, try_model
from voxtral_exp.app.job import TrainingJob
from voxtral_exp.app.workspace import Workspace


def build(workspace: Workspace) -> gr.Blocks:
    """The page for ``workspace`` (every path it reads or writes is there); it runs one training
    job at a time, whichever browser session starts it, and shows the last one an earlier app
    started until a new one starts."""
    with gr.Blocks(title="voxtral_exp") as page:
        gr.Markdown("# voxtral_exp: fine-tune Voxtral on your speech")
        recorded = dataset.build(page, workspace)
        train.build(page, workspace, TrainingJob(workspace.last_app_run()), recorded)
        try_model.build(page, workspace)
        publish.build(page, workspace)
    return page
