"""trackio: exactly one run per training run, and tracking never kills training.

Why not transformers' own TrackioCallback (report_to="trackio"): it logs TrainingArguments and
the model config rather than the resolved Hydra config; it ends the run at train end, before the
final evaluation's WER; it cannot replay a resumed run's history (below); and a trackio error
stops training. So voxtral_exp drives trackio itself: ``Tracker`` owns the run,
``TrackioLogger`` forwards the Trainer's metrics to it.

A run directory's trackio run is its own: its name is one no other trackio run of the project
holds (``unclaimed_name``), and run.json records the trackio run's id, the only one a resume
touches.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class Tracker:
    """A trackio run that turns every tracking error into one warning and carries on."""

    def __init__(self) -> None:
        self.run = None
        self._warned = False

    def start(
        self,
        project: str,
        name: str,
        group: str | None,
        config: dict,
        space_id: str | None,
        replay: list[dict] | None = None,
        system_metrics_interval: float | None = 10.0,
        own_id: str | None = None,
    ) -> None:
        """Start (or continue) the run. ``replay``: resuming from a checkpoint, the Trainer's log
        history up to it. The stopped attempt also logged the steps after the checkpoint, which
        are now trained again; trackio has no API to delete metric rows, so the run is deleted
        (trackio.Api) and started anew under its name with the history up to the checkpoint
        logged again: every step then appears once, from the attempt that continues. Only the
        trackio run ``own_id`` (the one run.json recorded) is ever deleted.

        ``system_metrics_interval``: seconds between trackio's own system metrics: GPU memory and
        utilisation (when it finds an NVIDIA GPU, through nvidia-ml-py) and CPU/RAM; None: off."""

        system = system_metrics_interval

        def init():
            import trackio

            if replay is not None and space_id is None and own_id is not None:
                for run in trackio.Api().runs(project):
                    if run.id == own_id:
                        run.delete()
            self.run = trackio.init(
                project=project,
                name=name,
                group=group,
                config=config,
                space_id=space_id,
                resume="allow",  # (without replay) a resumed run continues the same trackio run
                embed=False,
                auto_log_gpu=None if system else False,  # None: whenever trackio finds a GPU
                auto_log_cpu=None if system else False,
                gpu_log_interval=system or 10.0,
                cpu_log_interval=system or 10.0,
            )
            for entry in replay or []:
                logged = prefix_metrics({k: v for k, v in entry.items() if k != "step"})
                self.run.log({k: v for k, v in logged.items() if _number(v)}, step=entry["step"])
            log.info(
                "Tracking <tracking.project=%s>: trackio run %r (group %r)%s",
                project,
                name,
                group,
                f", {len(replay)} logged steps up to the checkpoint replayed" if replay else "",
            )

        self._guard(init)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            numbers = {k: v for k, v in metrics.items() if _number(v)}
            self._guard(lambda: self.run.log(numbers, step=step))

    def finish(self) -> None:
        if self.run is not None:
            import trackio

            # trackio.finish (not Run.finish) also forgets the run, so trackio's exit hook does not finish it again
            self._guard(trackio.finish)
            self.run = None

    def _guard(self, action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001 - tracking must never stop training
            if not self._warned:
                log.warning("trackio failed (%s: %s); training continues without tracking", type(e).__name__, e)
                self._warned = True
            self.run = None


def unclaimed_name(project: str, name: str, own_id: str | None) -> str:
    """``name``, or else ``name-2``, ``name-3``, ...: the first name that no trackio run of
    ``project`` holds but this run directory's own (``own_id``), so that two run directories (a
    reused tracking.name, or default names from two folders of the same name) never write into
    one trackio run. Logged when it is not ``name``. (A project on a Space is not read: the
    name is kept.)"""
    try:
        import trackio

        others = {run.name: run for run in trackio.Api().runs(project) if run.id != own_id}
    except Exception as e:  # noqa: BLE001 - no such project yet, or unreadable: tracking never stops training
        if "does not exist" not in str(e):
            log.warning("trackio: could not list the runs of %s (%s); keeping the name %r", project, e, name)
        return name
    unclaimed, n = name, 1
    while unclaimed in others:
        n += 1
        unclaimed = f"{name}-{n}"
    if unclaimed != name:
        holder = (others[name].config or {}).get("run_dir", "another run")
        log.warning(
            "Tracking <tracking.name=%s>: trackio run %r belongs to %s; this run is tracked as %r",
            name,
            name,
            holder,
            unclaimed,
        )
    return unclaimed


class TrackioLogger(TrainerCallback):
    """Sends the Trainer's logs to the Tracker as ``train/*`` and ``eval/*`` metrics (rank 0 only)."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.tracker.log(prefix_metrics(logs), step=state.global_step)


def prefix_metrics(logs: dict[str, Any]) -> dict[str, Any]:
    """Trainer log keys -> dashboard keys: eval_loss -> eval/loss, final_loss -> final/loss (the
    evaluation of the model final/ holds, once, at the end), loss -> train/loss."""
    out = {}
    for key, value in logs.items():
        prefix, _, rest = key.partition("_")
        out[f"{prefix}/{rest}" if prefix in ("eval", "final", "test") and rest else f"train/{key}"] = value
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
