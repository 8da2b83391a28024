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
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any, Literal

from procman._validate import check_name
from procman.errors import ProcmanError
from procman.guard import RuntimeGuard, RuntimeHandle
from procman.lowlevel import current_record
from procman.runnable import Control, Next, Runnable, RuntimeControlMessage

__all__ = ["Subprocess", "SubprocessFailed"]

_log = logging.getLogger("procman.subprocess")

OutputMode = Literal["log", "inherit", "discard"]
_OUTPUT_MODES: tuple[str, ...] = ("log", "inherit", "discard")

LINE_LIMIT = 64 * 1024
"""Longer output lines are logged in pieces of this many bytes."""

_KILL_WAIT = 5.0
"""How long a cancelled run waits for its SIGKILLed process to be reaped."""

_DRAIN_TIMEOUT = 2.0
"""How long a run waits, after its process ended, for the rest of its output.

Only a process that left the group (``setsid()``) and still holds the pipes
can make it wait that long.
"""

_PROBE_FIRST_DELAY = 0.05
_PROBE_MAX_DELAY = 1.0
_PROBE_CONNECT_TIMEOUT = 1.0

_USE_PIDFD = hasattr(os, "pidfd_open")


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
        self._argv = _check_argv(argv)
        self._name = (
            os.path.basename(self._argv[0]) or self._argv[0]
            if name is None
            else check_name(name, "name")
        )
        self._env = _check_env(env)
        if cwd is not None and not isinstance(cwd, str | os.PathLike):
            raise TypeError(f"cwd must be a str or os.PathLike, got {type(cwd).__name__}: {cwd!r}")
        self._cwd = cwd
        self._stop_signal = _check_signal(stop_signal, "stop_signal")
        self._reload_signal = (
            None if reload_signal is None else _check_signal(reload_signal, "reload_signal")
        )
        if output not in _OUTPUT_MODES:
            raise ValueError(f"output must be one of {_OUTPUT_MODES}, got {output!r}")
        self._output = output
        self._stdout_level = _check_level(stdout_level, "stdout_level")
        self._stderr_level = _check_level(stderr_level, "stderr_level")
        self._ready_pattern = _check_pattern(ready_pattern)
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
        _watch_exit(loop, popen, exited)
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
                    reader = await _connect(loop, pipe, transports)
                    tasks.append(loop.create_task(self._pump(reader, stream, level, fields, ready)))
            if ready is not None and self._ready_port is not None:
                tasks.append(loop.create_task(self._probe(ready)))
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
        env = None
        if self._env:
            env = dict(os.environ)
            for key, value in self._env.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
        if self._output == "inherit":
            out: int | None = None
        elif self._output == "log" or self._ready_pattern is not None:
            out = subprocess.PIPE
        else:
            out = subprocess.DEVNULL
        try:
            return subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=self._cwd,
                start_new_session=True,
            )
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
        _killpg(pid, sig)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        stream: str,
        level: int,
        fields: dict[str, object],
        ready: asyncio.Future[None] | None,
    ) -> None:
        """Log each line of one output stream; resolve ``ready`` on the first match."""
        logger = self._logger
        log = self._output == "log"
        pattern = self._ready_pattern
        extra = {"procman_event": "procman.subprocess.output", **fields, "procman_stream": stream}
        while True:
            try:
                data = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                data = exc.partial
                if not data:
                    return
            except asyncio.LimitOverrunError:
                data = await reader.read(LINE_LIMIT)
            line = data.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
            if (
                pattern is not None
                and ready is not None
                and not ready.done()
                and pattern.search(line)
            ):
                ready.set_result(None)
            if log and logger.isEnabledFor(level):
                logger.log(level, line, extra=extra)

    async def _probe(self, ready: asyncio.Future[None]) -> None:
        """Resolve ``ready`` once ``ready_host:ready_port`` accepts a connection."""
        assert self._ready_port is not None
        delay = _PROBE_FIRST_DELAY
        while not ready.done():
            try:
                async with asyncio.timeout(_PROBE_CONNECT_TIMEOUT):
                    _, writer = await asyncio.open_connection(self._ready_host, self._ready_port)
            except (OSError, TimeoutError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _PROBE_MAX_DELAY)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if not ready.done():
                ready.set_result(None)


# -- process plumbing ----------------------------------------------------------
def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _end_of(popen: subprocess.Popen[bytes]) -> int:
    """The program has exited and is not yet reaped: kill what is left of its group, reap it."""
    _killpg(popen.pid, signal.SIGKILL)
    return popen.wait()


def _set_result(fut: asyncio.Future[int], rc: int) -> None:
    if not fut.done():
        fut.set_result(rc)


def _watch_exit(
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
        _killpg(popen.pid, signal.SIGKILL)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_set_result, exited, rc)


async def _connect(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes], transports: list[asyncio.BaseTransport]
) -> asyncio.StreamReader:
    """A reader of ``pipe``; its transport (which owns the pipe) goes into ``transports``."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    transports.append(transport)
    return reader


# -- argument checks -------------------------------------------------------------
def _check_argv(argv: Any) -> tuple[str, ...]:
    if isinstance(argv, str | bytes | os.PathLike) or not isinstance(argv, Sequence):
        raise TypeError(
            f"argv must be a sequence of str or os.PathLike (e.g. ['prog', '--flag']), "
            f"got {type(argv).__name__}: {argv!r}"
        )
    if not argv:
        raise ValueError("argv must not be empty")
    result: list[str] = []
    for i, arg in enumerate(argv):
        value = os.fspath(arg) if isinstance(arg, os.PathLike) else arg
        if not isinstance(value, str):
            raise TypeError(
                f"argv[{i}] must be a str or os.PathLike[str], got {type(arg).__name__}: {arg!r}"
            )
        if "\0" in value:
            raise ValueError(f"argv[{i}] must not contain a NUL character")
        result.append(value)
    if not result[0]:
        raise ValueError("argv[0] (the program) must not be empty")
    return tuple(result)


def _check_env(env: Any) -> dict[str, str | None]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of str to str, got {type(env).__name__}")
    result: dict[str, str | None] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"env keys must be non-empty str without '=', got {key!r}")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"env[{key!r}] must be a str or None, got {type(value).__name__}")
        result[key] = value
    return result


def _check_signal(value: Any, arg: str) -> signal.Signals:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be a signal.Signals, got {type(value).__name__}: {value!r}")
    try:
        return signal.Signals(value)
    except ValueError:
        raise ValueError(f"{arg} must be a valid signal, got {value!r}") from None


def _check_level(value: Any, arg: str) -> int:
    if isinstance(value, str):
        level = logging.getLevelNamesMapping().get(value.upper())
        if level is None:
            raise ValueError(f"{arg} must be a logging level, got {value!r}")
        return level
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be a logging level (int or name), got {value!r}")
    if value < 0:
        raise ValueError(f"{arg} must be >= 0, got {value!r}")
    return value


def _check_pattern(value: Any) -> re.Pattern[str] | None:
    if value is None:
        return None
    if isinstance(value, re.Pattern):
        if not isinstance(value.pattern, str):
            raise TypeError("ready_pattern must be a str pattern, not bytes")
        return value
    if not isinstance(value, str):
        raise TypeError(f"ready_pattern must be a str or re.Pattern, got {type(value).__name__}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"ready_pattern is not a valid regular expression: {exc}") from None
