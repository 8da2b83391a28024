"""Observer backends. Each imports its third-party library only when constructed."""

from __future__ import annotations

from procman.observe.logging import LoggingObserver

__all__ = ["LoggingObserver"]
