"""The Try tab: pick a run (or type a Hub model id), record or upload a clip, read its transcript
(transcription.py: the code path of `python -m voxtral_exp.transcribe`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from voxtral_exp.app.errors import FieldError, user_errors
from voxtral_exp.app.fields import hub_id as checked_hub_id
from voxtral_exp.app.transcription import transcribe_clip
from voxtral_exp.app.workspace import Workspace

RUN, HUB_ID = "Run", "Hub model id"  # the fields' labels, named in messages


def refresh_runs(workspace: Workspace) -> gr.Dropdown:
    """The run list, as it is now."""
    return gr.Dropdown(choices=workspace.runs())


@user_errors
def try_model(workspace: Workspace, run: str, hub_id: str, audio: str | None, language: str) -> str:
    """The transcript of the clip by the chosen run's model (or the Hub model)."""
    model = model_source(workspace, run, hub_id)
    return transcribe_clip(model, audio, language) or "(the model returned an empty transcript)"


def model_source(workspace: Workspace, run: str, hub_id: str) -> str:
    """The run directory in the workspace, or the Hub id (one that names no folder on the server)."""
    if not (isinstance(hub_id, str) and hub_id.strip()):
        return str(workspace.run(run, RUN))
    model = checked_hub_id(hub_id, HUB_ID)
    if Path(model).exists():  # transcribe.load would read the folder instead
        raise FieldError(f"{HUB_ID}: {model} names a folder on the server; pick a run from the list instead")
    return model


def build(page: gr.Blocks, workspace: Workspace) -> None:
    """The tab's components and events (inside ``page``)."""
    space = gr.State(workspace)
    with gr.Tab("Try") as tab:
        with gr.Row():
            run = gr.Dropdown(workspace.runs(), label=RUN, allow_custom_value=True, elem_id="try-run")
            refresh = gr.Button("Refresh runs", elem_id="refresh")
            hub_id = gr.Textbox("", label=f"…or a {HUB_ID}", placeholder="owner/name")
        audio = gr.Audio(
            sources=["upload", "microphone"], type="filepath", label="Upload or record", elem_id="try-audio"
        )
        language = gr.Textbox(
            "", label="Language (empty: the one the run trained with, if any; else the model detects it)"
        )
        transcribe_button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        transcript = gr.Textbox(label="Transcript", elem_id="transcript-out")

    gr.on([page.load, tab.select, refresh.click], refresh_runs, space, run)
    transcribe_button.click(try_model, [space, run, hub_id, audio, language], transcript)
