"""Exceptions raised by procman."""

from __future__ import annotations

import signal as _signal

__all__ = [
    "ManagerStateError",
    "ProcmanError",
    "ReadyTimeoutError",
    "RestartIntensityExceeded",
    "TerminationSignal",
]


class ProcmanError(Exception):
    """Base class of every error procman raises itself."""


class ManagerStateError(ProcmanError):
    """A call that is not valid in the manager's current phase.

    The message names the call to use instead (``insert`` before start,
    ``add`` while running).
    """


class TerminationSignal(ProcmanError):
    """The tree was shut down because the process received a terminating signal.

    Raised by :class:`procman.builtin.SignalReceiver` after the graceful
    shutdown it triggered has finished; :attr:`signal` is the signal received.
    The conventional exit status of a program ending this way is
    :attr:`exit_code` (``128 + signum``).
    """

    def __init__(self, signal: _signal.Signals) -> None:
        super().__init__(f"received {signal.name}")
        self.signal = signal

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, what a shell reports for a signalled process."""
        return 128 + int(self.signal)

    def __reduce__(self) -> tuple[type[TerminationSignal], tuple[_signal.Signals]]:
        return (type(self), (self.signal,))


class RestartIntensityExceeded(ProcmanError):
    """More than ``max_restarts`` restarts were needed within ``within`` seconds.

    Raised by a :class:`procman.ProcessManager` with an ``intensity`` and by
    :class:`procman.builtin.RestartSupervisor` instead of restarting again;
    the last failure is its ``__cause__`` (None when the last run of a
    ``PERMANENT`` child returned normally). It escalates like any failure.
    """

    def __init__(self, child: str, max_restarts: int, within: float) -> None:
        super().__init__(
            f"process {child!r} needed more than {max_restarts} restarts within "
            f"{within:g}s; giving up"
        )
        self.child = child
        self.max_restarts = max_restarts
        self.within = within

    def __reduce__(self) -> tuple[type[RestartIntensityExceeded], tuple[str, int, float]]:
        return (type(self), (self.child, self.max_restarts, self.within))


class ReadyTimeoutError(ProcmanError, TimeoutError):
    """A ``wait_ready`` child did not signal readiness within its ``ready_timeout``.

    The child is cancelled (no graceful phase) and its run fails with this
    error, which its restart type then handles like any failure.
    """

    def __init__(self, child: str, timeout: float) -> None:
        super().__init__(f"process {child!r} did not become ready within {timeout:g}s")
        self.child = child
        self.timeout = timeout

    def __reduce__(self) -> tuple[type[ReadyTimeoutError], tuple[str, float]]:
        return (type(self), (self.child, self.timeout))
