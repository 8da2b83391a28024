"""An OS process in its own group: spawning it, seeing it exit, killing its group, reaping it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

__all__ = ["killpg", "spawn", "watch_exit"]

_USE_PIDFD = hasattr(os, "pidfd_open")


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str | None],
    cwd: str | os.PathLike[str] | None,
    out: int | None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdin from ``/dev/null``, stdout and stderr to ``out``.

    ``env`` is merged over this process's environment (None removes a
    variable). Raises :class:`OSError` when the program cannot be started.
    """
    merged = None
    if env:
        merged = dict(os.environ)
        for key, value in env.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        env=merged,
        cwd=cwd,
        start_new_session=True,
    )


def killpg(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pgid``; nothing when it is gone (or not ours)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _end_of(popen: subprocess.Popen[bytes]) -> int:
    """The program has exited and is not yet reaped: kill what is left of its group, reap it."""
    killpg(popen.pid, signal.SIGKILL)
    return popen.wait()


def _set_result(fut: asyncio.Future[int], rc: int) -> None:
    if not fut.done():
        fut.set_result(rc)


def watch_exit(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], exited: asyncio.Future[int]
) -> None:
    """Resolve ``exited`` with the exit status once the group is killed and the program reaped.

    With a pidfd (Linux) the event loop learns of the exit without reaping;
    elsewhere a thread waits with ``waitid(WNOWAIT)`` where available, else
    reaps first and then kills what is left of the group.
    """
    if _USE_PIDFD:
        try:
            fd = os.pidfd_open(popen.pid)
        except OSError:
            pass
        else:

            def on_exit() -> None:
                loop.remove_reader(fd)
                os.close(fd)
                _set_result(exited, _end_of(popen))

            loop.add_reader(fd, on_exit)
            return
    threading.Thread(
        target=_wait_in_thread,
        args=(loop, popen, exited),
        name=f"procman-subprocess-{popen.pid}",
        daemon=True,
    ).start()


def _wait_in_thread(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], exited: asyncio.Future[int]
) -> None:
    waitid = getattr(os, "waitid", None)
    if waitid is not None:
        with contextlib.suppress(ChildProcessError):
            waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOWAIT)
        rc = _end_of(popen)
    else:  # reap first: the group id stays reserved only while a member is left
        rc = popen.wait()
        killpg(popen.pid, signal.SIGKILL)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_set_result, exited, rc)
