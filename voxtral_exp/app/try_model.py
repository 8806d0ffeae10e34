"""The Try tab: pick a run (or type a Hub model id), record or upload a clip, read its transcript
(transcription.py: the code path of `python -m voxtral_exp.transcribe`)."""

from __future__ import annotations

import gradio as gr

from voxtral_exp.app.errors import user_errors
from voxtral_exp.app.transcription import transcribe_clip
from voxtral_exp.app.workspace import Workspace

RUN = "Run"  # the field's label, named in messages


def refresh_runs(workspace: Workspace) -> gr.Dropdown:
    """The run list, as it is now."""
    return gr.Dropdown(choices=workspace.runs())


@user_errors
def try_model(workspace: Workspace, run: str, hub_id: str, audio: str | None, language: str) -> str:
    """The transcript of the clip by the chosen run's model (or the Hub model)."""
    model = hub_id.strip() or str(workspace.run(run, RUN))
    return transcribe_clip(model, audio, language) or "(the model returned an empty transcript)"


def build(page: gr.Blocks, workspace: Workspace) -> None:
    """The tab's components and events (inside ``page``)."""
    space = gr.State(workspace)
    with gr.Tab("Try") as tab:
        with gr.Row():
            run = gr.Dropdown(workspace.runs(), label=RUN, allow_custom_value=True, elem_id="try-run")
            refresh = gr.Button("Refresh runs", elem_id="refresh")
            hub_id = gr.Textbox("", label="…or a Hub model id")
        audio = gr.Audio(
            sources=["upload", "microphone"], type="filepath", label="Upload or record", elem_id="try-audio"
        )
        language = gr.Textbox("", label="Language (empty: the model detects it)")
        transcribe_button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        transcript = gr.Textbox(label="Transcript", elem_id="transcript-out")

    gr.on([page.load, tab.select, refresh.click], refresh_runs, space, run)
    transcribe_button.click(try_model, [space, run, hub_id, audio, language], transcript)
