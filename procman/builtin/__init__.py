"""Built-in processes: IdleProcess, SignalReceiver, RestartSupervisor, Subprocess."""

from procman.builtin.idle import IdleProcess
from procman.builtin.restart import RestartBackoff, RestartIntensityExceeded, RestartSupervisor
from procman.builtin.signals import SignalReceiver
from procman.builtin.subprocess import Subprocess, SubprocessFailed

__all__ = [
    "IdleProcess",
    "RestartBackoff",
    "RestartIntensityExceeded",
    "RestartSupervisor",
    "SignalReceiver",
    "Subprocess",
    "SubprocessFailed",
]
