"""The loguru backend: lifecycle events as loguru records with bound fields.

Following loguru's guidance for libraries, procman's loguru records are
**disabled until the application enables them**::

    from loguru import logger
    from procman.observe import LoguruObserver

    observer = LoguruObserver()
    logger.enable("procman")

Importing this module calls ``logger.disable("procman")`` unless the
application already chose (an earlier ``logger.enable("procman")`` is kept).

Levels are those of the stdlib backend (:data:`procman.observe.logging.LEVELS`):
failures and abandoned children ERROR (a :class:`~procman.TerminationSignal`
WARNING), restarts scheduled and stop timeouts WARNING, manager operations
INFO, per-child routine DEBUG. Each record is made with ``logger.bind(...)``
and carries in ``record["extra"]``: ``event`` (``procman.child.failed``...),
``supervisor``, ``child`` and, where they apply, ``outcome``, ``error_type``,
``error`` (``"Class: message"``), ``duration``, ``attempt``, ``delay``,
``restart_count``, ``reason``, ``children``, ``forced``, ``result``,
``grace_period``; plus ``trace_id`` and ``span_id`` (lower-case hex) while an
OpenTelemetry span is current (inside a child: its ``procman.child.run``
span). A failure's exception is attached with ``opt(exception=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from loguru import logger as _default_logger
except ImportError as exc:  # pragma: no cover - exercised with the extra missing
    raise ImportError(
        "procman.observe.LoguruObserver needs loguru: pip install 'procman[loguru]'"
    ) from exc

from procman.errors import TerminationSignal
from procman.events import LifecycleEvent, ProcessFailed, RestartScheduled
from procman.observe.logging import LEVELS, describe

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["LoguruObserver"]

_LIBRARY = "procman"
_PREFIX = len("procman_")
_LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
}


def _disable_unless_enabled() -> None:
    """``logger.disable("procman")`` unless the application already enabled it."""
    activation = getattr(getattr(_default_logger, "_core", None), "activation_list", None)
    if isinstance(activation, list) and any(
        isinstance(entry, tuple) and entry and str(entry[0]).startswith(_LIBRARY + ".")
        for entry in activation
    ):
        return
    _default_logger.disable(_LIBRARY)


_disable_unless_enabled()


def _trace_source() -> Callable[[], tuple[str, str, bool] | None] | None:
    try:
        from procman.observe.otel_logging import current_trace_ids
    except ImportError:
        return None
    return current_trace_ids


class LoguruObserver:
    """Logs lifecycle events with loguru (``logger``: default, the global loguru logger)."""

    def __init__(self, logger: Logger | None = None) -> None:
        self.logger: Logger = _default_logger if logger is None else logger
        self._trace_ids = _trace_source()

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        """False when no loguru handler takes the event's level (so it is not even built)."""
        min_level = getattr(getattr(self.logger, "_core", None), "min_level", None)
        if not isinstance(min_level, int | float):
            return True
        return LEVELS.get(event_type, logging.INFO) >= min_level

    def on_event(self, event: LifecycleEvent) -> None:
        level = LEVELS.get(type(event), logging.INFO)
        msg, described = describe(event)
        fields: dict[str, Any] = {key[_PREFIX:]: value for key, value in described.items()}
        exc: BaseException | None = None
        if isinstance(event, ProcessFailed):
            fields["error"] = f"{type(event.exception).__name__}: {event.exception}"
            if isinstance(event.exception, TerminationSignal):
                level = logging.WARNING
            else:
                exc = event.exception
        elif isinstance(event, RestartScheduled) and event.exception is not None:
            fields["error_type"] = type(event.exception).__name__
            fields["error"] = f"{type(event.exception).__name__}: {event.exception}"
        if self._trace_ids is not None:
            ids = self._trace_ids()
            if ids is not None:
                fields["trace_id"], fields["span_id"], _ = ids
        self.logger.bind(**fields).opt(exception=exc).log(_LEVEL_NAMES.get(level, level), msg)

    def __repr__(self) -> str:
        return "LoguruObserver()"
