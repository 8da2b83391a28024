"""The launcher's logging: a stderr handler if none is set, observers logging a traceback once."""

from __future__ import annotations

import collections
import logging
import sys
from collections.abc import Callable

from procman._launch.options import LogBackend, LogFormat
from procman.errors import TerminationSignal
from procman.events import LifecycleEvent, ProcessFailed
from procman.observe.logging import LoggingObserver, describe
from procman.observer import Observer

__all__ = ["TEXT_FORMAT", "LoggingOnce", "Once", "configure_logging", "loguru_once"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    log: LogBackend, log_format: LogFormat, level: int, cleanups: list[Callable[[], None]]
) -> None:
    formatter: logging.Formatter
    if log_format == "json":
        from procman.observe.jsonlog import json_formatter

        formatter = json_formatter()
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    if log == "loguru":
        try:
            from loguru import logger
        except ImportError as exc:
            raise ImportError("log='loguru' needs loguru: pip install 'procman[loguru]'") from exc
        logger.remove()
        sink = logger.add(sys.stderr, level=level, serialize=log_format == "json")
        logger.enable("procman")
        cleanups.append(lambda: logger.remove(sink))
    root = logging.getLogger()
    if root.handlers:
        return  # the application configured logging itself
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    cleanups.append(undo)


class Once:
    """A bounded set of exception objects (exceptions cannot be weakly referenced)."""

    def __init__(self, size: int = 256) -> None:
        self._items: collections.OrderedDict[int, BaseException] = collections.OrderedDict()
        self._size = size

    def add(self, exc: BaseException) -> bool:
        """Remember ``exc``; False when it was already there."""
        key = id(exc)
        if key in self._items and self._items[key] is exc:
            return False
        self._items[key] = exc
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return True

    def __contains__(self, exc: BaseException) -> bool:
        return self._items.get(id(exc)) is exc


class LoggingOnce(LoggingObserver):
    """The stdlib observer, logging each exception's traceback once.

    A failure travels up the tree (the same exception fails the nested
    managers above the child); the levels above say "traceback logged above".
    """

    def __init__(self) -> None:
        super().__init__()
        self._logged = Once()

    def on_event(self, event: LifecycleEvent) -> None:
        if isinstance(event, ProcessFailed) and not isinstance(event.exception, TerminationSignal):
            logger = self.logger
            if not logger.isEnabledFor(logging.ERROR):
                return
            if not self._logged.add(event.exception):
                msg, fields = describe(event)
                logger.error("%s (traceback logged above)", msg, extra=fields)
                return
        super().on_event(event)


def loguru_once() -> Observer:
    """The loguru observer, logging each exception's traceback once (as :class:`LoggingOnce`)."""
    from procman.observe.loguru import LoguruObserver

    class _LoguruOnce(LoguruObserver):
        def __init__(self) -> None:
            super().__init__()
            self._logged = Once()

        def on_event(self, event: LifecycleEvent) -> None:
            if (
                isinstance(event, ProcessFailed)
                and not isinstance(event.exception, TerminationSignal)
                and not self._logged.add(event.exception)
            ):
                exc = event.exception
                msg, described = describe(event)
                fields = {key.removeprefix("procman_"): value for key, value in described.items()}
                fields["error"] = f"{type(exc).__name__}: {exc}"
                self.logger.bind(**fields).error(msg + " (traceback logged above)")
                return
            super().on_event(event)

    return _LoguruOnce()
