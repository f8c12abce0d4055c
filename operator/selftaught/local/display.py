"""What a person watching a local run sees: events, a bar per stage, the iterations table, a plot.

On a terminal the bars are live (rich); in logs (not a TTY, or ``--no-progress``) the same
information comes as plain lines, one every few seconds, so CI logs stay readable.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from selftaught.api import IterationRecord, RunStatus
from selftaught.plan import CreateJob, Event
from selftaught.summaries import SetScores

#: Seconds between two plain progress lines in non-interactive output.
PLAIN_INTERVAL = 10.0


class Display:
    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console()
        self.live = self.console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._last_plain = 0.0
        self._latest: tuple[int, int | None, str] = (0, None, "")
        self._last_line = ""

    def event(self, event: Event) -> None:
        style = "yellow" if event.type == "Warning" else "cyan"
        stamp = time.strftime("%H:%M:%S")
        self.console.print(
            f"{stamp} [{style}]{event.reason}[/{style}] {event.message}", soft_wrap=True
        )

    def begin(self, create: CreateJob) -> None:
        task = create.task
        shards = f", {task.shards} shards" if task.shards > 1 else ""
        self._label = f"iteration {task.iteration} · {task.stage.value}{shards}"
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=None, rate="")

    def update(self, shards: list[dict[str, Any] | None]) -> None:
        known = [s for s in shards if s]
        done = sum(int(s.get("done", 0)) for s in known)
        total = sum(int(s.get("total", 0)) for s in known) or None
        elapsed = max((float(s.get("elapsed", 0.0)) for s in known), default=0.0)
        tokens = sum(float(s.get("tokensPerSecond", 0.0)) for s in known)
        rate = f"{done / elapsed:.1f} items/s" if elapsed > 0 else ""
        if tokens:
            rate += f" · {tokens:,.0f} tok/s"
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total, rate=rate)
        elif done and time.monotonic() - self._last_plain >= PLAIN_INTERVAL:
            self._last_plain = time.monotonic()
            self._plain(done, total, rate)
        self._latest = (done, total, rate)

    def _plain(self, done: int, total: int | None, rate: str) -> None:
        line = f"  {self._label}: {f'{done}/{total}' if total else done} {rate}".rstrip()
        if line != self._last_line:  # the stage's final count is printed once, not twice
            self.console.print(line, soft_wrap=True)
            self._last_line = line

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._latest[0]:
            self._plain(*self._latest)  # the stage's final count, whatever the interval
        self._progress = self._task = None
        self._last_plain = 0.0
        self._latest = (0, None, "")

    def summary(self, status: RunStatus, plot: Path | None = None) -> None:
        self.console.print(iterations_table(status))
        if plot is not None:
            self.console.print(f"accuracy plot: {plot}")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _score_cell(scores: SetScores) -> str:
    """A set's accuracy; a partial RewardBench set says so in the cell itself."""
    return _fmt(scores.accuracy) + (" partial" if scores.partial else "")


def _details(scores: SetScores) -> bool:
    """Whether a set's sections are worth their own cell: RewardBench's, scored officially (a
    lenient set's categories are the synthetic pool's, and its overall says enough)."""
    return scores.scoring == "official"


def _partial_note(name: str, scores: SetScores) -> str:
    missing = ", ".join(scores.sections_missing) or "none"
    return (
        f"{name}: partial RewardBench set ({scores.examples}/{scores.rows_expected} rows, "
        f"sections missing: {missing});\n  its value is the mean of the sections present, "
        "not a RewardBench score"
    )


def _gpu_cell(by_stage: dict[str, float]) -> str:
    """``judge 64, train 4``: GPU-seconds of the stages that used a GPU ("-" for none)."""
    used = [f"{stage} {seconds:.0f}" for stage, seconds in by_stage.items() if seconds > 0]
    return ", ".join(used) or "-"


def _method_cell(record: IterationRecord) -> str:
    if record.method is None:  # iteration 0 (the seed) or not trained yet
        return "-"
    if record.reward_accuracy is None:
        return record.method
    return f"{record.method} acc {record.reward_accuracy:.2f}"


def iterations_table(status: RunStatus) -> Table:
    """One row per iteration: training method, kept/sampled, judging cost, loss, every
    evaluation set's scores, and GPU cost (GPU-seconds by stage, GPU-hours per held-out point
    gained so far). DPO iterations add TRL's reward accuracy at the last step to the method
    cell (``dpo acc 0.81``), the quick check that the judge learned to prefer the correct one.

    A set scored the official way is headed ``name (official)``; its cells are RewardBench's
    overall only when the set is complete, else they read ``0.712 partial`` and the caption says
    which sections and how many rows were scored.
    """
    sets: dict[str, str] = {}
    notes: dict[str, str] = {}
    for record in status.history:
        for name, scores in record.scores.items():
            sets.setdefault(
                name, f"{name} ({scores.scoring})" if scores.scoring == "official" else name
            )
            if scores.partial:
                notes[name] = _partial_note(name, scores)
    best = "" if status.best_iteration is None else f" (best: iteration {status.best_iteration})"
    table = Table(
        title=f"{status.phase.value}: iterations{best}",
        caption="\n".join(notes.values()) or None,
    )
    history = status.history
    # Columns that would be empty on every row are left out, so a CPU run's table stays narrow.
    show_method = any(r.method == "dpo" for r in history)
    show_tokens = any(r.judging_tokens is not None for r in history)
    show_gpu = any(v > 0 for r in history for v in r.stage_gpu_seconds.values())
    show_sections = any(_details(scores) for r in history for scores in r.scores.values())
    table.add_column("iter", justify="right")
    if show_method:
        table.add_column("method")
    table.add_column("kept/sampled", justify="right")
    if show_tokens:
        table.add_column("tokens", justify="right")
        table.add_column("tok/kept", justify="right")
    table.add_column("train loss", justify="right")
    for header in sets.values():
        table.add_column(header, justify="right")
    if show_sections:
        table.add_column("sections")
    table.add_column("seconds", justify="right")
    if show_gpu:
        table.add_column("GPU-s by stage")
        table.add_column("GPU-h/point", justify="right")
    for record in history:
        kept = (
            f"{record.judgments_kept}/{record.judgments_sampled}"
            if record.judgments_sampled is not None
            else "-"
        )
        cells = [f"{record.iteration}{' *' if record.iteration == status.best_iteration else ''}"]
        if show_method:
            cells.append(_method_cell(record))
        cells.append(kept)
        if show_tokens:
            tokens = "-" if record.judging_tokens is None else f"{record.judging_tokens:,}"
            cells += [tokens, _fmt(record.tokens_per_kept, 1)]
        cells.append(_fmt(record.training_loss))
        cells += [
            _score_cell(record.scores[name]) if name in record.scores else "-" for name in sets
        ]
        if show_sections:
            sections = "; ".join(
                f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.sections.items())
                for name, scores in record.scores.items()
                if _details(scores)
            )
            cells.append(sections or "-")
        cells.append(f"{sum(record.stage_seconds.values()):.0f}")
        if show_gpu:
            cells += [_gpu_cell(record.stage_gpu_seconds), _fmt(record.gpu_hours_per_point, 4)]
        table.add_row(*cells)
    return table


def _import_plotting() -> None:
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot


def prepare_plotting() -> threading.Thread:
    """Import matplotlib in the background while the stages run (~0.25 s the run's end saves).

    The runner only waits on its stage processes meanwhile; :func:`plot_accuracy` imports the
    same modules, so it blocks on the import lock if this has not finished.
    """
    thread = threading.Thread(target=_import_plotting, name="import-matplotlib", daemon=True)
    thread.start()
    return thread


def plot_accuracy(status: RunStatus, path: Path) -> Path | None:
    """A PNG of overall accuracy per iteration, one line per evaluation set."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in status.history:
        for name, scores in record.scores.items():
            series.setdefault(name, []).append((record.iteration, scores.accuracy))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for name, points in sorted(series.items()):
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker="o", label=name)
    axes.set_xlabel("iteration (0 = seed judge)")
    axes.set_ylabel("pairwise accuracy")
    axes.set_ylim(0.0, 1.0)
    axes.set_xticks(sorted({r.iteration for r in status.history}))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title("Self-taught judge accuracy per iteration")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
