"""The Try tab: pick a run (or type a Hub model id), record or upload a clip, read its transcript
(transcription.py: the code path of `python -m voxtral_exp.transcribe`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from voxtral_exp.app.errors import user_errors
from voxtral_exp.app.transcription import transcribe_clip
from voxtral_exp.app.workspace import find_runs


def refresh_runs(workdir: Path) -> gr.Dropdown:
    """The run list, as it is now."""
    return gr.Dropdown(choices=find_runs(workdir))


@user_errors
def try_model(run: str, hub_id: str, audio: str | None, language: str) -> str:
    """The transcript of the clip by the chosen run's model (or the Hub model)."""
    return transcribe_clip(hub_id.strip() or run, audio, language) or "(the model returned an empty transcript)"


def build(page: gr.Blocks, workdir: Path) -> None:
    """The tab's components and events (inside ``page``)."""
    workspace = gr.State(workdir)
    with gr.Tab("Try") as tab:
        with gr.Row():
            run = gr.Dropdown(find_runs(workdir), label="Run", allow_custom_value=True, elem_id="try-run")
            refresh = gr.Button("Refresh runs", elem_id="refresh")
            hub_id = gr.Textbox("", label="…or a Hub model id")
        audio = gr.Audio(
            sources=["upload", "microphone"], type="filepath", label="Upload or record", elem_id="try-audio"
        )
        language = gr.Textbox("", label="Language (empty: the model detects it)")
        transcribe_button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        transcript = gr.Textbox(label="Transcript", elem_id="transcript-out")

    gr.on([page.load, tab.select, refresh.click], refresh_runs, workspace, run)
    transcribe_button.click(try_model, [run, hub_id, audio, language], transcript)
