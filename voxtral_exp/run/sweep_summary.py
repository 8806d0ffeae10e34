"""Sweep summaries: when a Hydra multirun ends, tabulate every job and plot the objective.

Registered as a Hydra callback in conf/hydra/default.yaml; `python -m voxtral_exp.sweep SWEEP_DIR`
rebuilds them for any sweep directory.
Writes summary.csv, summary.md (best first, failed jobs last) and summary.png.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from voxtral_exp.files import atomic_path, write_atomic
from voxtral_exp.run.config import OBJECTIVES

log = logging.getLogger(__name__)

METRICS = OBJECTIVES  # every metric a sweep can minimise is shown


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep directory when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        objective = config.get("objective", "eval_loss")
        summarize(Path(config.hydra.sweep.dir), objective)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (any folder below the sweep holding a run.json)."""
    rows = []
    for run_file in sorted(sweep_dir.glob("*/run.json"), key=lambda p: _job_order(p.parent.name)):
        run = json.loads(run_file.read_text())
        results = run_file.parent / "eval_results.json"
        metrics = json.loads(results.read_text()) if results.exists() else run.get("metrics", {})
        rows.append(
            {
                "job": run_file.parent.name,
                "status": run.get("status"),
                "overrides": {k: v for k, _, v in (o.partition("=") for o in run.get("overrides", []))},
                **{m: metrics.get(m) for m in METRICS},
                "runtime_s": _runtime(run),
            }
        )
    return rows


def summarize(sweep_dir: Path, objective: str = "eval_loss") -> list[dict[str, Any]]:
    rows = collect(sweep_dir)
    if not rows:
        log.warning("Sweep summary: no job directories with run.json under %s", sweep_dir)
        return rows
    rows.sort(key=lambda r: (r["status"] != "completed", _number(r.get(objective))))
    swept = sorted({k for r in rows for k in r["overrides"]})
    varying = [k for k in swept if len({r["overrides"].get(k) for r in rows}) > 1] or swept
    columns = ["rank", "job", "status", *swept, *METRICS, "runtime_s"]
    table = [
        {
            "rank": i + 1,
            "job": r["job"],
            "status": r["status"],
            **{k: r["overrides"].get(k, "") for k in swept},
            **{m: _fmt(r[m]) for m in METRICS},
            "runtime_s": _fmt(r["runtime_s"], 1),
        }
        for i, r in enumerate(rows)
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(table)
    write_atomic(sweep_dir / "summary.csv", buffer.getvalue())
    fixed = [f"`{k}={rows[0]['overrides'].get(k)}`" for k in swept if k not in varying]
    shown = ["rank", "job", "status", *varying, *METRICS, "runtime_s"]
    lines = [
        f"# Sweep {sweep_dir}",
        "",
        f"Objective: `{objective}` (lower is better), best first.",
        f"Same in every job: {' '.join(fixed) or 'nothing'}.",
        "",
        "| " + " | ".join(shown) + " |",
        "|" + "---|" * len(shown),
    ]
    lines += ["| " + " | ".join(str(row[c]) for c in shown) + " |" for row in table]
    write_atomic(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    _plot(rows, varying, objective, sweep_dir / "summary.png")
    best = rows[0]
    log.info(
        "Sweep summary <%s>: %d jobs, best %s=%s (%s)",
        sweep_dir,
        len(rows),
        objective,
        _fmt(best.get(objective)),
        " ".join(f"{k}={v}" for k, v in best["overrides"].items()),
    )
    return rows


def _plot(rows: list[dict], keys: list[str], objective: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(rows, keys, objective)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot(rows: list[dict], keys: list[str], objective: str):
    """The objective against each swept key, one panel per key: log axes for log-spaced values
    (learning rates, ranks 8/16/32), plain tick labels, the best job marked."""
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "completed" and r.get(objective) is not None]
    best = min(done, key=lambda r: _number(r[objective]), default=None)
    keys = keys or ["job"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = {r["job"]: r["job"] if key == "job" else r["overrides"].get(key, r["job"]) for r in done}
        numeric = all(_is_number(v) for v in values.values())
        x_of = {job: float(v) if numeric else str(v) for job, v in values.items()}
        xs = [x_of[r["job"]] for r in done]
        ax.scatter(xs, [r[objective] for r in done], color="tab:blue")
        if best is not None:
            ax.scatter(
                [x_of[best["job"]]],
                [best[objective]],
                marker="*",
                s=220,
                color="tab:red",
                zorder=3,
                label=f"best: job {best['job']} ({_fmt(best[objective])})",
            )
            ax.legend(loc="best", fontsize="small")
        if numeric and _log_spaced(key, xs):
            ax.set_xscale("log")
        if numeric and 0 < len(set(xs)) <= 8:  # a grid: a tick at each value, written plainly
            ax.set_xticks(sorted(set(xs)), [f"{v:g}" for v in sorted(set(xs))])
            ax.minorticks_off()
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.margins(0.12)  # the best job's star stays inside the frame
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{objective} per job ({len(done)} completed of {len(rows)}; lower is better)")
    fig.tight_layout()
    return fig


def _log_spaced(key: str, xs: list[float]) -> bool:
    """Learning rates, weight decays and values that grow by factors (8, 16, 32) read on a log axis."""
    values = sorted(set(xs))
    if not values or values[0] <= 0:
        return False
    if key.endswith(("learning_rate", "weight_decay")):
        return True
    return len(values) > 1 and (values[-1] / values[0] >= 10 or all(b / a >= 2 for a, b in zip(values, values[1:])))


def _runtime(run: dict) -> float | None:
    try:
        return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _job_order(name: str) -> tuple:
    return (0, int(name)) if name.isdigit() else (1, name)


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float:
    return float(value) if _is_number(value) and not math.isnan(float(value)) else math.inf


def _fmt(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
