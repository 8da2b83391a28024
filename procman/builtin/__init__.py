"""Built-in processes: IdleProcess, SignalReceiver, RestartSupervisor."""

from procman.builtin.idle import IdleProcess
from procman.builtin.restart import RestartBackoff, RestartIntensityExceeded, RestartSupervisor
from procman.builtin.signals import SignalReceiver

__all__ = [
    "IdleProcess",
    "RestartBackoff",
    "RestartIntensityExceeded",
    "RestartSupervisor",
    "SignalReceiver",
]
