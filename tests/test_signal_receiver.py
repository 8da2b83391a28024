"""SignalReceiver in-process: handlers are installed while it runs and removed after."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from helpers import Worker, wait_until

from procman import ProcessManager, TerminationSignal
from procman.builtin import SignalReceiver


def handler_installed(sig: signal.Signals) -> bool:
    loop = asyncio.get_running_loop()
    return sig in getattr(loop, "_signal_handlers", {})


async def test_handlers_removed_after_normal_stop() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(SignalReceiver()).insert(Worker())
    task = asyncio.create_task(m.process_start())
    await wait_until(lambda: handler_installed(signal.SIGTERM))
    assert handler_installed(signal.SIGHUP)
    await m.process_handle().shutdown()
    await task
    assert not handler_installed(signal.SIGTERM)
    assert not handler_installed(signal.SIGHUP)


async def test_sigterm_gives_termination_signal_after_graceful_shutdown() -> None:
    w = Worker()
    m = ProcessManager("root", observers=[])
    m.insert(SignalReceiver()).insert(w)
    task = asyncio.create_task(m.process_start())
    await wait_until(lambda: handler_installed(signal.SIGTERM))
    os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(TerminationSignal) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.signal is signal.SIGTERM and info.value.exit_code == 143
    assert w.stopped_gracefully
    await wait_until(lambda: not handler_installed(signal.SIGTERM))


async def test_sighup_reloads_the_manager() -> None:
    w = Worker()
    m = ProcessManager("root", observers=[])
    m.insert(SignalReceiver()).insert(w)
    task = asyncio.create_task(m.process_start())
    await wait_until(lambda: handler_installed(signal.SIGHUP))
    await w.started.wait()
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_until(lambda: w.reloads == 1)
    await m.process_handle().shutdown()
    await task


def test_overlapping_signal_sets_rejected() -> None:
    with pytest.raises(ValueError):
        SignalReceiver(terminating=[signal.SIGHUP])
