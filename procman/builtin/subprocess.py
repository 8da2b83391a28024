"""Subprocess: supervises an OS process (and its process group) as a child (Unix only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from procman._validate import check_name
from procman.builtin._output import LINE_LIMIT as LINE_LIMIT
from procman.builtin._output import OUTPUT_MODES, OutputMode, connect, pump
from procman.builtin._probe import probe_port
from procman.builtin._process import killpg, spawn, watch_exit
from procman.builtin._subprocess_args import (
    check_argv,
    check_env,
    check_level,
    check_pattern,
    check_signal,
)
from procman.errors import ProcmanError
from procman.guard import RuntimeGuard, RuntimeHandle
from procman.lowlevel import current_record
from procman.runnable import Control, Next, Runnable, RuntimeControlMessage

__all__ = ["Subprocess", "SubprocessFailed"]

_log = logging.getLogger("procman.subprocess")

_KILL_WAIT = 5.0
"""How long a cancelled run waits for its SIGKILLed process to be reaped."""

_DRAIN_TIMEOUT = 2.0
"""How long a run waits, after its process ended, for the rest of its output.

Only a process that left the group (``setsid()``) and still holds the pipes
can make it wait that long.
"""


class SubprocessFailed(ProcmanError):
    """A supervised OS process ended with a failure, or could not be started.

    * :attr:`argv`: the command line (a tuple of str).
    * :attr:`returncode`: the exit status; negative ``-N`` when the process
      was killed by signal ``N`` (as in :mod:`subprocess`); ``None`` when it
      could not be started, in which case the :class:`OSError` (missing
      binary, permission denied, missing working directory) is the
      ``__cause__``.
    * :attr:`signal`: the signal that killed it, if any.
    """

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        name: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.argv: tuple[str, ...] = tuple(argv)
        self.returncode = returncode
        self.name = name
        self.detail = detail
        who = f"subprocess {name!r} ({shlex.join(self.argv)})" if name else shlex.join(self.argv)
        if returncode is None:
            message = f"{who} could not be started: {detail}"
        elif returncode < 0:
            message = f"{who} was killed by {_signal_name(-returncode)}"
        else:
            message = f"{who} exited with status {returncode}"
        super().__init__(message)

    @property
    def signal(self) -> signal.Signals | None:
        """The signal that killed the process, or None."""
        rc = self.returncode
        if rc is None or rc >= 0:
            return None
        try:
            return signal.Signals(-rc)
        except ValueError:
            return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.argv, self.returncode, self.name, self.detail))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Subprocess(Runnable):
    """Runs ``argv`` as an OS process in its own process group, as a child (Unix only).

    * The program starts with stdin from ``/dev/null``, ``env`` merged over
      the supervisor's environment (a ``None`` value removes a variable) and
      ``cwd`` as its working directory, in a new session (its own process
      group, no controlling terminal).
    * Exit status 0 is a clean stop; any other status fails the child with
      :class:`SubprocessFailed`. After a shutdown has sent ``stop_signal``,
      status 0 or death by ``stop_signal`` is a clean stop. A program that
      cannot be started fails the child with :class:`SubprocessFailed`
      (``returncode`` None), chained from the :class:`OSError`.
    * A shutdown sends ``stop_signal`` to the whole group; a reload sends
      ``reload_signal`` to the program itself (like ``systemctl reload`` with
      ``kill -HUP $MAINPID``: other members of the group, such as workers,
      may not expect it); ``reload_signal=None`` ignores reloads.
    * When the program ends, for any reason, every process left in its group
      gets SIGKILL (while the program is not yet reaped, so the group id
      cannot have been reused) and the program is reaped. When the child is
      cancelled (force-cancelled after its grace period), the group gets
      SIGKILL and the run waits for the program to be reaped. Processes that
      leave the group (``setsid()``) are out of reach.
    * ``output="log"`` (default): each line of stdout and stderr becomes a
      record of the logger ``procman.subprocess.<name>`` (``stdout_level``,
      ``stderr_level``) emitted in a task that shares the child's context,
      so the child's span is current; ``extra`` carries ``procman_event``
      (``procman.subprocess.output``), ``procman_supervisor``,
      ``procman_child``, ``procman_stream`` and ``procman_pid``.
      ``"inherit"``: the program writes to the supervisor's stdout/stderr.
      ``"discard"``: to ``/dev/null`` (still read when ``ready_pattern`` is set).
    * Readiness: with ``ready_pattern`` (a regex searched in each output
      line) or ``ready_port`` (a TCP port on ``ready_host`` that accepts a
      connection; probed with backoff from 50 ms up to 1 s between
      attempts), the run signals readiness from its own task once the
      condition holds; without either it is ready as soon as it runs. The
      manager's ``ready_timeout`` bounds the wait.
    * It can be started again (under :class:`RestartSupervisor` or a
      restarting manager): each start runs the program anew. A shutdown sent
      before start is kept: the next start returns without running it.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        reload_signal: signal.Signals | None = signal.SIGHUP,
        output: OutputMode = "log",
        stdout_level: int | str = logging.INFO,
        stderr_level: int | str = logging.WARNING,
        ready_pattern: str | re.Pattern[str] | None = None,
        ready_port: int | None = None,
        ready_host: str = "127.0.0.1",
    ) -> None:
        self._argv = check_argv(argv)
        self._name = (
            os.path.basename(self._argv[0]) or self._argv[0]
            if name is None
            else check_name(name, "name")
        )
        self._env = check_env(env)
        if cwd is not None and not isinstance(cwd, str | os.PathLike):
            raise TypeError(f"cwd must be a str or os.PathLike, got {type(cwd).__name__}: {cwd!r}")
        self._cwd = cwd
        self._stop_signal = check_signal(stop_signal, "stop_signal")
        self._reload_signal = (
            None if reload_signal is None else check_signal(reload_signal, "reload_signal")
        )
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {OUTPUT_MODES}, got {output!r}")
        self._output = output
        self._stdout_level = check_level(stdout_level, "stdout_level")
        self._stderr_level = check_level(stderr_level, "stderr_level")
        self._ready_pattern = check_pattern(ready_pattern)
        if ready_port is not None:
            if isinstance(ready_port, bool) or not isinstance(ready_port, int):
                raise TypeError(f"ready_port must be an int, got {ready_port!r}")
            if not 0 < ready_port < 65536:
                raise ValueError(f"ready_port must be between 1 and 65535, got {ready_port!r}")
        self._ready_port = ready_port
        self._ready_host = check_name(ready_host, "ready_host")
        if self._ready_pattern is not None and ready_port is not None:
            raise ValueError("give ready_pattern or ready_port, not both")
        if self._ready_pattern is not None and output == "inherit":
            raise ValueError("ready_pattern needs the output: use output='log' or 'discard'")
        self._logger = logging.getLogger(f"procman.subprocess.{self._name}")
        self._guard = RuntimeGuard()
        self._pid: int | None = None
        self._returncode: int | None = None

    # -- properties ----------------------------------------------------------
    @property
    def argv(self) -> tuple[str, ...]:
        return self._argv

    @property
    def pid(self) -> int | None:
        """The pid (and process group id) of the running program, None when none runs."""
        return self._pid

    @property
    def returncode(self) -> int | None:
        """The exit status of the latest run (negative: killed by that signal)."""
        return self._returncode

    @property
    def logger(self) -> logging.Logger:
        """The logger that receives the program's output lines."""
        return self._logger

    def process_name(self) -> str:
        return self._name

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    def __repr__(self) -> str:
        return f"<Subprocess {self._name!r} pid={self._pid}>"

    # -- the run ---------------------------------------------------------------
    async def process_start(self) -> None:
        ticker = self._guard.runtime_ticker()
        # Messages queued before this start: a shutdown means "do not run it".
        while True:
            op = await ticker.tick(asyncio.sleep(0))
            if isinstance(op, Next):
                break
            if op.message is RuntimeControlMessage.SHUTDOWN:
                return
        self._returncode = None
        popen = self._spawn()
        loop = asyncio.get_running_loop()
        pid = popen.pid
        exited: asyncio.Future[int] = loop.create_future()
        watch_exit(loop, popen, exited)
        self._pid = pid
        tasks: list[asyncio.Task[None]] = []
        transports: list[asyncio.BaseTransport] = []
        stopping = False
        try:
            rec = current_record()
            fields: dict[str, object] = {
                "procman_supervisor": rec.owner.path if rec is not None else "",
                "procman_child": rec.name if rec is not None else self._name,
                "procman_pid": pid,
            }
            if _log.isEnabledFor(logging.INFO):
                _log.info(
                    "procman: %s started as pid %d",
                    self._name,
                    pid,
                    extra={"procman_event": "procman.subprocess.spawned", **fields},
                )
            needs_ready = self._ready_pattern is not None or self._ready_port is not None
            ready: asyncio.Future[None] | None = loop.create_future() if needs_ready else None
            for pipe, stream, level in (
                (popen.stdout, "stdout", self._stdout_level),
                (popen.stderr, "stderr", self._stderr_level),
            ):
                if pipe is not None:
                    reader = await connect(loop, pipe, transports)
                    output = pump(
                        reader,
                        stream,
                        level,
                        fields,
                        ready,
                        logger=self._logger if self._output == "log" else None,
                        pattern=self._ready_pattern,
                    )
                    tasks.append(loop.create_task(output))
            if ready is not None and self._ready_port is not None:
                probe = probe_port(self._ready_host, self._ready_port, ready)
                tasks.append(loop.create_task(probe))
            signalled = False
            while not exited.done():
                waiting: Any
                if ready is not None and not signalled:
                    waiting = asyncio.wait((exited, ready), return_when=asyncio.FIRST_COMPLETED)
                else:
                    waiting = asyncio.shield(exited)
                match await ticker.tick(waiting):
                    case Next():
                        if ready is not None and ready.done() and not exited.done():
                            signalled = True
                            self._guard.ready()
                    case Control(RuntimeControlMessage.SHUTDOWN):
                        if not stopping and not exited.done():
                            stopping = True
                            self._signal_group(self._stop_signal, fields)
                    case Control(RuntimeControlMessage.RELOAD):
                        sig = self._reload_signal
                        if sig is not None and not stopping and not exited.done():
                            _log.info(
                                "procman: sending %s to %s (pid %d)",
                                sig.name,
                                self._name,
                                pid,
                                extra={"procman_event": "procman.subprocess.reload", **fields},
                            )
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, sig)
                    case Control():
                        pass
            rc = exited.result()
            if tasks:  # the rest of the output (the group is dead: the pipes are closing)
                await asyncio.wait(tasks, timeout=_DRAIN_TIMEOUT)
        finally:
            if not exited.done():  # cancelled (or failed) while the program runs
                self._signal_group(signal.SIGKILL, fields=None)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((exited,), timeout=_KILL_WAIT)
            if exited.done():
                self._returncode = exited.result()
            self._pid = None
            for transport in transports:  # stops reading at once (closes the pipe later)
                transport.close()
            for pipe in (popen.stdout, popen.stderr):  # closed now: no fd outlives the run
                if pipe is not None:
                    pipe.close()
            pending = [task for task in tasks if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if rc == 0 or (stopping and rc == -self._stop_signal):
            return
        raise SubprocessFailed(self._argv, rc, self._name)

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._output == "inherit":
            out: int | None = None
        elif self._output == "log" or self._ready_pattern is not None:
            out = subprocess.PIPE
        else:
            out = subprocess.DEVNULL
        try:
            return spawn(self._argv, self._env, self._cwd, out)
        except OSError as exc:
            raise SubprocessFailed(self._argv, None, self._name, str(exc)) from exc

    def _signal_group(self, sig: signal.Signals, fields: dict[str, object] | None) -> None:
        pid = self._pid
        if pid is None:
            return
        level = logging.WARNING if sig is signal.SIGKILL else logging.INFO
        if _log.isEnabledFor(level):
            _log.log(
                level,
                "procman: sending %s to the process group of %s (pid %d)",
                sig.name,
                self._name,
                pid,
                extra={"procman_event": "procman.subprocess.signal", "procman_pid": pid}
                if fields is None
                else {"procman_event": "procman.subprocess.signal", **fields},
            )
        killpg(pid, sig)
