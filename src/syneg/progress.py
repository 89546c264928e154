"""syneg's progress display: one bar at a time on stderr, plain lines in a log file, nothing with --quiet.

Every long step (encoding, selecting negatives, synthesis, training) reports through :class:`Progress`,
which shows what matters for it: how far, how fast (``texts/s``), how long to go (ETA), and a detail
the step supplies (the loss, the acceptance rate). Third-party bars are switched off by the CLI
(:func:`silence_third_party_progress`), so this is the only display.

- On a terminal: a rich bar on stderr, removed when the step ends (the pipeline's stage lines stay).
- Anywhere else (a pipe, a log file): a line when the step starts, at every 10% (no more than one a
  few seconds) and at least every 30 seconds, and one when it ends, so a log reads like a log rather
  than a storm of carriage returns.
- With :func:`set_verbosity` ``"quiet"`` (``syneg --quiet``): nothing.

The rate and ETA follow the recent pace (tqdm's exponential smoothing), not the average since the
start: a resumed synthesis replays its cached pairs in seconds and then writes a pair every few
minutes, and an average would promise the hours left in minutes. The closing line gives the average.

An interrupted step records where it stopped (:func:`stopped_at`), which the CLI prints on Ctrl-C::

    >>> with Progress("Encoding documents", total=240, unit="texts", enabled=False) as bar:
    ...     bar.advance(120)
    >>> bar.position()
    'Encoding documents at 120/240 texts'
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress

Verbosity = Literal["quiet", "normal", "verbose"]

# Log lines: at every tenth of the work, but not more often than every few seconds, and at least every 30 s.
LINE_EVERY_FRACTION = 0.1
LINE_AT_MOST_EVERY_SECONDS = 3.0
LINE_AT_LEAST_EVERY_SECONDS = 30.0
# The weight of the latest step in the smoothed rate (tqdm's default): old steps fade by 0.7 a step. A step
# is at least a second of work (tqdm's minimum interval, longer): mining advances once per query, in
# milliseconds, and synthesis finishes concurrent pairs in bursts; single calls would make the rate jitter.
RATE_SMOOTHING = 0.3
RATE_STEP_SECONDS = 1.0

_verbosity: Verbosity = "normal"
# Where an interruption stopped, innermost first: filled as the exception unwinds through steps and stages.
_stopped: list[str] = []
# Status output (stage lines and bars) goes to stderr; stdout is kept for results.
status_console = Console(stderr=True)
_live: RichProgress | None = None


def set_verbosity(verbosity: Verbosity) -> None:
    """``quiet`` hides progress and stage lines; ``normal`` and ``verbose`` show them."""
    global _verbosity
    _verbosity = verbosity
    status_console.quiet = verbosity == "quiet"


def silence_third_party_progress() -> None:
    """Switch off every third-party progress bar and the tokenizers' fork warning: syneg's own display
    replaces them. The libraries read these variables when imported, so call this before they are.

    huggingface_hub's switch also turns off transformers' bars ("Loading weights"), datasets' its own;
    ``TQDM_DISABLE`` makes every other tqdm bar default to off (sentence-transformers' "Computing widget
    examples"); syneg draws its bars with rich, so none of its own is affected.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextmanager
def activity(name: str) -> Iterator[None]:
    """Name a stretch of work (e.g. a pipeline stage) for :func:`stopped_at`."""
    try:
        yield
    except BaseException:
        _stopped.append(name)
        raise


def stopped_at() -> str | None:
    """Where the last interruption stopped, outermost first (``synthesize › Synthesizing at 3/8 pairs``)."""
    return " › ".join(reversed(_stopped)) or None


def _terminal_display() -> RichProgress:
    """The live display on the terminal, one for all the bars open at once (rich allows no more)."""
    global _live
    if _live is None:
        # stdout is left alone: results printed there must not end up on stderr above the bar.
        _live = RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             console=status_console, transient=True, redirect_stdout=False)  # fmt: skip
        _live.start()
    return _live


def _remove_bar(task: TaskID) -> None:
    global _live
    display = _terminal_display()
    display.remove_task(task)
    if not display.tasks:
        display.stop()
        _live = None


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class Progress:
    """The progress of one step, as a context manager.

    Args:
        description: What the step does (``Encoding documents``).
        total: Units of work, or None until :meth:`start` knows it (the trainer's step count).
        unit: What is counted, in the plural (``texts``, ``pairs``, ``steps``); rates are per second, or per
            minute when slower.
        enabled: False shows nothing (the API's ``show_progress=False``); ``--quiet`` does the same.
    """

    def __init__(self, description: str, total: int | None = None, unit: str = "items", enabled: bool = True) -> None:
        self.description = description
        self.unit = unit
        self.total = total
        self.completed = 0
        self.detail = ""
        self.enabled = enabled and _verbosity != "quiet"
        self._baseline = 0
        self._started = time.monotonic()
        self._last_line = self._started
        self._last_decile = 0
        self._task: TaskID | None = None
        self._reset_pace(0)

    def __enter__(self) -> Progress:
        if self.total is not None:
            self.start(self.total)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            _stopped.append(self.position())
        if self._task is not None:
            _remove_bar(self._task)
        elif self.enabled and self.total is not None:
            self._line(f"stopped at {self.completed:,}/{self.total:,} {self.unit}" if exc_type else self._summary())

    def start(self, total: int, completed: int = 0) -> None:
        """Begin counting towards ``total`` from ``completed`` (work done before a resume is not in the rate)."""
        self.total, self.completed, self._baseline = total, completed, completed
        self._started = self._last_line = time.monotonic()
        self._reset_pace(completed)
        if not self.enabled:
            return
        if status_console.is_terminal:
            self._task = _terminal_display().add_task(self.description, total=total, completed=completed, status=self._status())
        else:
            self._line(self._status())

    def advance(self, amount: int = 1, detail: str | None = None) -> None:
        self.update(self.completed + amount, detail)

    def update(self, completed: int, detail: str | None = None) -> None:
        """Set the units done so far, and optionally the step's detail (e.g. ``loss 0.42``)."""
        self._pace(completed)
        self.completed = completed
        if detail is not None:
            self.detail = detail
        if not self.enabled or self.total is None:
            return
        if self._task is not None:
            _terminal_display().update(self._task, completed=completed, status=self._status())
            return
        since_line = time.monotonic() - self._last_line
        decile = int(completed / max(self.total, 1) / LINE_EVERY_FRACTION)
        if completed < self.total and (
            (decile > self._last_decile and since_line >= LINE_AT_MOST_EVERY_SECONDS) or since_line >= LINE_AT_LEAST_EVERY_SECONDS
        ):
            self._line(self._status())
            self._last_decile = decile

    def position(self) -> str:
        return f"{self.description} at {self.completed:,}/{self.total or 0:,} {self.unit}"

    def _reset_pace(self, completed: int) -> None:
        self._paced_at, self._paced_units = time.monotonic(), completed
        self._smoothed_pace, self._steps = 0.0, 0

    def _pace(self, completed: int) -> None:
        """Fold the seconds per unit of the step since the last one into the smoothed pace. Seconds per unit,
        not units and seconds apart: the ETA is linear in it, and a burst of cached pairs (many units in a
        second) must weigh as one step, not as many units."""
        units, now = completed - self._paced_units, time.monotonic()
        if units <= 0 or now - self._paced_at < RATE_STEP_SECONDS:  # a detail alone, or the step goes on
            return
        self._smoothed_pace = RATE_SMOOTHING * (now - self._paced_at) / units + (1 - RATE_SMOOTHING) * self._smoothed_pace
        self._steps += 1
        self._paced_at, self._paced_units = now, completed

    def _rate(self) -> float:
        """Units per second at the recent pace (corrected, as tqdm's, for the smoothing's start at zero); the
        average until a first step is timed."""
        if not self._steps:
            return self._average_rate()
        pace = self._smoothed_pace / (1 - (1 - RATE_SMOOTHING) ** self._steps)
        return 1 / max(pace, 1e-9)

    def _average_rate(self) -> float:
        return (self.completed - self._baseline) / max(time.monotonic() - self._started, 1e-9)

    def _rate_text(self, rate: float) -> str:
        """Per second, or per minute for slow work (an LLM writing a pair every 30 s)."""
        return f"{rate:,.1f} {self.unit}/s" if rate >= 1 else f"{60 * rate:,.1f} {self.unit}/min"

    def _status(self) -> str:
        parts = [f"{self.completed:,}/{self.total or 0:,} {self.unit}"]
        if self.completed > self._baseline:
            rate = self._rate()
            parts.append(self._rate_text(rate))
            parts.append(f"ETA {_duration(((self.total or 0) - self.completed) / rate)}")
        if self.detail:
            parts.append(self.detail)
        return " · ".join(parts)

    def _summary(self) -> str:
        elapsed = time.monotonic() - self._started
        done = f"{self.completed:,}/{self.total or 0:,} {self.unit} in {_duration(elapsed)}"
        if self.completed > self._baseline:
            done += f" ({self._rate_text(self._average_rate())})"
        return " · ".join(filter(None, [done, self.detail]))

    def _line(self, status: str) -> None:
        self._last_line = time.monotonic()
        status_console.print(f"{self.description}: {status}", highlight=False, soft_wrap=True)
