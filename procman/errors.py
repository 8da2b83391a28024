"""Exceptions raised by procman."""

from __future__ import annotations

import signal as _signal

__all__ = ["ManagerStateError", "ProcmanError", "TerminationSignal"]


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
