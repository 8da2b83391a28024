"""The exit report: what became of every child of a tree when it ended.

Like OTP's supervisor reports and suture's report of unstopped services, one
summary per tree run: each child's final state, its restarts, how long it
ran and its last error. :func:`procman.run` and ``procman run`` log it when
the root ends; a program that runs trees itself does the same with an
:class:`ExitRecorder` attached as an observer::

    recorder = ExitRecorder()
    root = ProcessManager("app", observers=[LoggingObserver(), recorder])
    try:
        await root.process_start()
    finally:
        report = exit_report(recorder)   # logs one record on the "procman" logger
        sys.stderr.write(report.table())  # the same as a table, for a terminal

The recorder keeps one small entry per child path (O(1) per event); errors
are kept as text (``"Type: message"``), never as exception objects.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from procman.errors import TerminationSignal
from procman.events import (
    ChildEvent,
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    RestartScheduled,
)

__all__ = ["ChildOutcome", "ExitRecorder", "ExitReport", "exit_report"]

_log = logging.getLogger("procman")

_WANTED = (
    ProcessStarting,
    ProcessStarted,
    ProcessStopped,
    ProcessFailed,
    ProcessCancelled,
    ProcessAbandoned,
    RestartScheduled,
    ProcessRestarted,
)


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """One child's end: ``state`` is ``stopped``, ``failed``, ``cancelled``,
    ``force-cancelled`` (it did not stop within its grace period),
    ``abandoned`` (it ignored the cancellation too), ``signalled`` (a
    SignalReceiver that raised TerminationSignal) or, for a child that had
    not ended, ``running``/``backoff``."""

    path: str
    state: str
    restarts: int
    run_time: float
    """Seconds from the child's first start to its end (or to the report)."""
    last_error: str | None


def duration(seconds: float) -> str:
    """A run time for people: ``45ms`` under a second, ``12.3s``, ``4m05.0s``, ``2h03m``."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60.0:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(seconds, 60.0)
    if minutes < 60:
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True, slots=True)
class ExitReport:
    """The outcome of every child seen, in the order they first started."""

    children: tuple[ChildOutcome, ...]

    def counts(self) -> dict[str, int]:
        """How many children ended in each state."""
        result: dict[str, int] = {}
        for child in self.children:
            result[child.state] = result.get(child.state, 0) + 1
        return result

    def summary(self) -> str:
        """One line naming every child (what the log record's message says)."""
        if not self.children:
            return "procman exit report: no child ran"
        parts = []
        for c in self.children:
            part = f"{c.path} {c.state} ({c.restarts} restarts, {duration(c.run_time)}"
            if c.last_error:
                part += f", last error {c.last_error}"
            parts.append(part + ")")
        return "procman exit report: " + "; ".join(parts)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The children as plain dicts (what the structured field holds)."""
        return [asdict(c) for c in self.children]

    def table(self) -> str:
        """The report as an aligned text table (ends with a newline)."""
        header = ("CHILD", "STATE", "RESTARTS", "RUN TIME", "LAST ERROR")
        rows = [
            (c.path, c.state, str(c.restarts), duration(c.run_time), c.last_error or "-")
            for c in self.children
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
        lines = ["procman exit report"]
        for row in (header, *rows):
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, _one_line(row[4])]).rstrip())
        return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _Entry:
    __slots__ = ("ended_at", "first_start", "last_error", "restarts", "state")

    def __init__(self, now: float) -> None:
        self.first_start = now
        self.ended_at: float | None = None
        self.state = "running"
        self.restarts = 0
        self.last_error: str | None = None


class ExitRecorder:
    """An observer that remembers each child's final state, restarts and last error."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return issubclass(event_type, _WANTED)

    def on_event(self, event: LifecycleEvent) -> None:
        if not isinstance(event, ChildEvent):
            return
        path = event.path
        entry = self._entries.get(path)
        if entry is None:
            entry = self._entries[path] = _Entry(event.time)
        restart_count = getattr(event, "restart_count", None)
        if isinstance(restart_count, int):
            entry.restarts = max(entry.restarts, restart_count)
        match event:
            case ProcessStarting() | ProcessStarted():
                entry.state = "running"
                entry.ended_at = None
            case ProcessStopped():
                self._end(entry, "stopped", event.time)
            case ProcessFailed(exception=TerminationSignal() as exc):
                self._end(entry, "signalled", event.time)
                entry.last_error = str(exc)
            case ProcessFailed(exception=exc):
                self._end(entry, "failed", event.time)
                entry.last_error = _error_text(exc)
            case ProcessCancelled(forced=True):
                self._end(entry, "force-cancelled", event.time)
            case ProcessCancelled():
                self._end(entry, "cancelled", event.time)
            case ProcessAbandoned():
                self._end(entry, "abandoned", event.time)
            case RestartScheduled(attempt=attempt, exception=exc):
                entry.state = "backoff"
                entry.restarts = max(entry.restarts, attempt)
                if exc is not None:
                    entry.last_error = _error_text(exc)
            case ProcessRestarted(attempt=attempt):
                entry.state = "running"
                entry.restarts = max(entry.restarts, attempt)

    @staticmethod
    def _end(entry: _Entry, state: str, now: float) -> None:
        entry.state = state
        entry.ended_at = now

    def report(self) -> ExitReport:
        """The outcome of every child seen so far."""
        now = time.monotonic()
        order = {path: i for i, path in enumerate(self._entries)}

        def tree_order(path: str) -> tuple[float, ...]:
            parts = path.split("/")
            prefixes = ("/".join(parts[: i + 1]) for i in range(len(parts)))
            return tuple(order.get(prefix, -1) for prefix in prefixes)

        children = tuple(
            ChildOutcome(
                path=path,
                state=e.state,
                restarts=e.restarts,
                run_time=max(0.0, (e.ended_at if e.ended_at is not None else now) - e.first_start),
                last_error=e.last_error,
            )
            for path, e in sorted(self._entries.items(), key=lambda item: tree_order(item[0]))
        )
        return ExitReport(children)

    def clear(self) -> None:
        """Forget every child (before the tree runs again)."""
        self._entries.clear()

    def __repr__(self) -> str:
        return f"ExitRecorder({len(self._entries)} children)"


def exit_report(
    recorder: ExitRecorder,
    *,
    logger: logging.Logger | str | None = "procman",
    level: int = logging.INFO,
) -> ExitReport:
    """Build the report from ``recorder`` and log it as one structured record.

    The record's message is :meth:`ExitReport.summary`; its ``extra`` fields
    are ``procman_event="procman.exit_report"``, ``procman_report`` (a list
    of dicts: ``path``, ``state``, ``restarts``, ``run_time``,
    ``last_error``) and ``procman_counts``. A report with a failed,
    force-cancelled or abandoned child is logged at WARNING. ``logger=None`` logs nothing.
    """
    report = recorder.report()
    if logger is not None:
        target = logging.getLogger(logger) if isinstance(logger, str) else logger
        counts = report.counts()
        if counts.get("failed") or counts.get("abandoned") or counts.get("force-cancelled"):
            level = max(level, logging.WARNING)
        target.log(
            level,
            report.summary(),
            extra={
                "procman_event": "procman.exit_report",
                "procman_report": report.as_dicts(),
                "procman_counts": counts,
            },
        )
    return report
