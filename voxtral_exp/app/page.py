"""The app's one page: a title and the four tabs, in the order a user goes through them."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from voxtral_exp.app import dataset, publish, train, try_model
from voxtral_exp.app.job import TrainingJob


def build(workdir: Path) -> gr.Blocks:
    """The page for ``workdir`` (datasets/ and outputs/ go there); it runs one training job at a
    time, whichever browser session starts it."""
    with gr.Blocks(title="voxtral_exp") as page:
        gr.Markdown("# voxtral_exp: fine-tune Voxtral on your speech")
        recorded = dataset.build(page, workdir)
        train.build(page, workdir, TrainingJob(), recorded)
        try_model.build(page, workdir)
        publish.build(page, workdir)
    return page
