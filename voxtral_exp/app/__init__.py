"""The web app: record a dataset, launch and watch a run, try a model, publish a demo.

    python -m voxtral_exp.app [--host 127.0.0.1] [--port 7860] [--workdir DIR]
                              [--auth USER:PASSWORD | --auth-file FILE]

One module per tab, each building its components and wiring their events where they are
declared; the handlers are plain module-level functions:
- dataset.py (and prompts.py): record or upload clips, type or correct their transcripts and
  languages, listen to and delete them; save train.jsonl / eval.jsonl in the format
  `dataset=jsonl` reads (voxtral_exp.data.recordings).
- train.py: pick model, method, data and the common knobs; the exact `python train.py ...` command
  (command.py) is shown, then run as a subprocess (one at a time, job.py) whose status and progress
  (from the run's run.json) and log refresh on a timer; Stop is Ctrl-C (the run is recorded as
  interrupted and resumes with Resume, also after the app restarts); a finished run shows its
  WER/CER and predictions.
- try_model.py: transcribe a recording or upload with a run's model (or a Hub id), through the
  code path of `python -m voxtral_exp.transcribe` (transcription.py).
- publish.py: `python -m voxtral_exp.push` for a run's model repo and a Gradio demo Space.

Safe by default: server.py binds to localhost and requires a login for anything else;
workspace.py keeps every path inside one folder; fields.py checks each form value and passes text
to train.py as a literal; errors.py shows a UserError as a message. page.py puts the tabs on one
page. Nothing in the training path imports this package.
"""
