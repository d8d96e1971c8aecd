"""What ``chronum run`` prints while a flow runs.

Three printers hang off the event bus: ``PlainPrinter`` (a line per state change and per line
of step output, for pipes and CI logs), ``LivePrinter`` (a terminal: output scrolls above a
status block that is redrawn a few times a second) and ``SilentPrinter`` (``--format json``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ..eventbus import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StepCached,
    StepCancelled,
    StepExpanded,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from ..executors import capture
from ..state import FINISHED, RunState, run_words

if TYPE_CHECKING:
    from ..api import Run

SYMBOLS = {
    "succeeded": "✓", "failed": "✗", "cancelled": "⊘", "skipped": "–",
    "upstream_failed": "↯", "cached": "↺", "retrying": "↻", "running": "▶",
    "interrupted": "!",
}


# SGR codes of the lines a state change prints; step output is never coloured.
_COLOURS: dict[type[Event], str] = {
    StepSucceeded: "32", StepFailed: "31", StepCancelled: "35", StepSkipped: "90",
    StepCached: "36", StepRetrying: "33", RunStarted: "1",
}


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class _Group:
    """The instances of one fan-out step, counted as they end."""

    __slots__ = ("counts", "n", "name", "shown")

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.n = n
        self.counts: dict[str, int] = {}
        #: Tenths of the instances that had ended when the last progress line was printed.
        self.shown = 0

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        """``process[ 37/100 ] ✓35 ✗2``."""
        c = self.counts
        width = len(str(self.n))
        text = (f"{self.name}[{self.done:>{width}}/{self.n} ] ✓{c.get('succeeded', 0)}"
                f" ✗{c.get('failed', 0)}")
        for status in ("cached", "skipped", "cancelled"):
            if c.get(status):
                text += f" {SYMBOLS[status]}{c[status]}"
        return text


#: How an instance's end event counts in its group.
_ENDS: dict[type[Event], str] = {
    StepSucceeded: "succeeded", StepFailed: "failed", StepCached: "cached",
    StepSkipped: "skipped", StepCancelled: "cancelled",
}


class Printer:
    """Base printer: turns events into lines; subclasses decide where they go.

    The instances of a fan-out step are grouped: their starts, successes, skips and kept
    results print no line each; a progress line (``process[ 37/100 ] ✓35 ✗2``) does, every
    tenth of them, and a failed instance prints its own line with its reason.
    """

    def __init__(self, out: IO[str] | None = None, quiet: bool = False,
                 colour: bool = False) -> None:
        self._out = out or sys.stdout
        self.quiet = quiet
        self.colour = colour
        #: The run as its events so far describe it (made at ``run.started``).
        self.state = RunState.new("", ())
        #: Fan-out steps by name, and each instance's group.
        self.groups: dict[str, _Group] = {}
        self.group_of: dict[str, _Group] = {}

    @property
    def out(self) -> IO[str]:
        # While a run captures fds 1 and 2, the printer writes where they pointed before.
        return capture.terminal(self._out)

    def __call__(self, event: Event) -> None:
        self.fold(event)
        instance, line = self.grouped(event)
        if not instance:
            line = self.describe(event)
        if line is not None:
            try:
                self.emit_line(self.paint(event, line))
            except BrokenPipeError:
                self.reader_gone()

    def reader_gone(self) -> None:
        """The reader of a pipe stopped early (``chronum run f.yaml | head``): as any command
        in a pipe, stop printing without a word; the run goes on and is recorded whole."""
        import os

        self._out = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115

    def paint(self, event: Event, line: str) -> str:
        code = _COLOURS.get(type(event)) if self.colour else None
        return f"\x1b[{code}m{line}\x1b[0m" if code else line

    def fold(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.state = RunState.new(event.run_id, event.steps)
            self.groups, self.group_of = {}, {}
        elif type(event) is StepExpanded and event.step is not None:
            group = self.groups[event.step] = _Group(event.step, len(event.instances))
            for name in event.instances:
                self.group_of[name] = group
        self.state.apply(event)

    def grouped(self, event: Event) -> tuple[bool, str | None]:
        """(whether ``event`` is about an instance, the line to print for it if any)."""
        group = self.group_of.get(event.step or "") if self.group_of else None
        if group is None:
            return False, None
        end = _ENDS.get(type(event))
        if end is None:
            if isinstance(event, LogLine):
                return True, None if self.quiet else f"[{event.step}] {event.line}"
            return True, None
        group.counts[end] = group.counts.get(end, 0) + 1
        tenth = group.done * 10 // max(group.n, 1)
        if end == "failed":
            return True, self.describe(event)
        if tenth > group.shown:
            group.shown = tenth
            return True, group.line()
        return True, None

    @property
    def total(self) -> int:
        return len(self.state.steps)

    def describe(self, event: Event) -> str | None:
        if isinstance(event, LogLine):
            return None if self.quiet else f"[{event.step}] {event.line}"
        if isinstance(event, StepExpanded):
            n = len(event.instances)
            return f"[{event.step}] {n} instance" + ("" if n == 1 else "s")
        if isinstance(event, RunStarted):
            steps = f"{self.total} step" + ("" if self.total == 1 else "s")
            return (f"▶ {event.flow} · run {event.run_id} · {steps} · "
                    f"maxParallel={event.max_parallel}"
                    + (f" · resuming {event.parent_run_id}" if event.parent_run_id else ""))
        if isinstance(event, StepStarted):
            extra = f" (attempt {event.attempt})" if (event.attempt or 1) > 1 else ""
            why = f": {event.reason}" if event.reason and (event.attempt or 1) == 1 else ""
            return f"[{event.step}] started{extra}{why}"
        if isinstance(event, StepSucceeded):
            return f"[{event.step}] succeeded in {_fmt_s(event.duration_s)}"
        if isinstance(event, StepRetrying):
            return (f"[{event.step}] attempt {event.attempt} failed ({event.reason}); "
                    f"retrying in {_fmt_s(event.delay_s)}")
        if isinstance(event, StepFailed):
            tail = " (continueOnError)" if event.continued else ""
            return f"[{event.step}] failed in {_fmt_s(event.duration_s)}: {event.reason}{tail}"
        if isinstance(event, StepCancelled):
            return f"[{event.step}] cancelled: {event.reason}"
        if isinstance(event, StepSkipped):
            return f"[{event.step}] {event.status}: {event.reason}"
        if isinstance(event, StepCached):
            if event.reason:
                return f"[{event.step}] {event.reason}"
            return f"[{event.step}] cached from run {event.from_run}"
        if isinstance(event, RunFinished):
            return None
        return None

    def emit_line(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        pass

    def summary(self, run: Run) -> None:
        parts = ", ".join(f"{n} {state}" for state, n in sorted(self.state.counts.items())
                          if n and state in FINISHED)
        took = f" in {_fmt_s(run.duration_s)}" if run.duration_s is not None else ""
        state = self.state
        words = run_words(run.status, state.n_continued)
        why = f": {state.reason}" if state.reason else ""
        self.out.write(f"{SYMBOLS.get(run.status, '')} run {run.run_id} {words}{took}{why}"
                       f" ({parts or 'no steps'})\n")
        if run.status != "succeeded":
            self.out.write(f"  see `chronum show {run.run_id}`, `chronum logs {run.run_id} "
                           "STEP`; `chronum resume last` runs what did not succeed\n")
        self.out.flush()


class PlainPrinter(Printer):
    """Plain lines for pipes, files and CI logs, flushed within a tenth of a second.

    Flushing every line would cost a write per line: on a flow of many short steps that is
    more than the steps. During a run a flush is scheduled on the loop instead, so a reader
    of the pipe still sees each line almost at once.
    """

    FLUSH_AFTER = 0.1

    def __init__(self, out: IO[str] | None = None, quiet: bool = False,
                 colour: bool = False) -> None:
        super().__init__(out, quiet, colour)
        self._flush_due = False

    def emit_line(self, line: str) -> None:
        self.out.write(line + "\n")
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not inside a run: nothing will come back to flush later
            self.out.flush()
            return
        self._flush_due = True
        loop.call_later(self.FLUSH_AFTER, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        try:
            self.out.flush()
        except BrokenPipeError:
            self.reader_gone()

    def close(self) -> None:
        self.out.flush()


class SilentPrinter(Printer):
    def __call__(self, event: Event) -> None:
        pass


class LivePrinter(Printer):
    """A terminal view: finished steps and output scroll; running steps and a bar stay below."""

    REFRESH = 0.1

    def __init__(self, out: IO[str] | None = None, quiet: bool = False,
                 colour: bool = False) -> None:
        super().__init__(out, quiet, colour)
        self.last_line: dict[str, str] = {}
        self.block_height = 0
        self.last_draw = 0.0
        self.started = time.monotonic()
        self.pending: list[str] = []

    def __call__(self, event: Event) -> None:
        self.fold(event)
        if isinstance(event, LogLine) and event.step:
            self.last_line[event.step] = event.line
        instance, line = self.grouped(event)
        if not instance:
            line = self.describe(event)
        elif line is not None and not isinstance(event, LogLine | StepFailed):
            line = None  # the block below shows the group's progress as it goes
        if line is not None and not isinstance(event, StepStarted):
            self.pending.append(self.paint(event, line))
        now = time.monotonic()
        if now - self.last_draw >= self.REFRESH or isinstance(event, RunFinished):
            self.redraw(now)

    def redraw(self, now: float) -> None:
        self.last_draw = now
        width = shutil.get_terminal_size((100, 20)).columns
        parts = []
        if self.block_height:
            parts.append(f"\x1b[{self.block_height}F\x1b[J")
        parts.extend(line + "\n" for line in self.pending)
        self.pending.clear()
        block = self._block(now, width)
        parts.extend(line + "\n" for line in block)
        self.block_height = len(block)
        self.out.write("".join(parts))
        self.out.flush()

    def _block(self, now: float, width: int) -> list[str]:
        lines = []
        running = self.state.active()
        if self.group_of:  # a fan-out step is one line, however many instances run
            shown: list[str] = []
            for name in running:
                group = self.group_of.get(name)
                if group is None:
                    shown.append(name)
            running = shown
            for group in self.groups.values():
                if self.state.steps[group.name].status in ("running", "retrying"):
                    lines.append(f"  ▶ {group.line()}"[: width - 1])
        wall = time.time()
        for name in running[:8]:
            step = self.state.steps[name]
            since = step.current.started_at if step.current is not None else None
            took = _fmt_s(wall - since) if since is not None else ""
            extra = f" attempt {step.attempts}" if step.attempts > 1 else ""
            last = self.last_line.get(name, "")
            text = f"  ▶ {name} {took}{extra}  {last}"
            lines.append(text[: width - 1])
        if len(running) > 8:
            lines.append(f"  … and {len(running) - 8} more running")
        total, done = self.total, self.state.done
        bar_width = max(10, min(40, width - 40))
        filled = int(bar_width * done / max(total, 1))
        lines.append(f"  [{'█' * filled}{'·' * (bar_width - filled)}] {done}/{total}"
                     f" steps · {_fmt_s(now - self.started)}")
        return lines

    def close(self) -> None:
        self.redraw(time.monotonic())
        if self.block_height:  # leave the final bar on screen, nothing else to clear
            self.block_height = 0


def use_colour(choice: str, env: Mapping[str, str], terminal: bool) -> bool:
    """Whether progress lines are coloured: ``--color``, then NO_COLOR, then FORCE_COLOR, then
    whether stdout is a terminal. Either variable counts only when not empty (no-color.org,
    force-color.org)."""
    if choice != "auto":
        return choice == "always"
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    return terminal


def printer_for(fmt: str, quiet: bool = False, colour: str = "auto") -> Printer:
    """The live view on a terminal, plain lines elsewhere; colour is decided apart from that,
    so a terminal under NO_COLOR still redraws and a pipe under ``--color always`` is coloured."""
    if fmt == "json":
        return SilentPrinter()
    terminal = sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"
    painted = use_colour(colour, os.environ, terminal)
    if terminal:
        return LivePrinter(quiet=quiet, colour=painted)
    return PlainPrinter(quiet=quiet, colour=painted)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table."""
    body = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in body]
    return "\n".join(lines)
