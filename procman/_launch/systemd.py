"""systemd readiness notification: ``READY=1`` / ``STOPPING=1`` on ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import logging
import os
import socket

from procman.manager import ProcessManager

__all__ = ["notify_systemd", "wait_tree_ready"]

_log = logging.getLogger("procman.launch")


async def wait_tree_ready(root: ProcessManager) -> None:
    """Return once the whole tree is ready (what systemd's ``READY=1`` waits for).

    Returns at once when the tree stopped before it was ready.
    """
    await root.wait_ready()


def notify_systemd(state: str) -> bool:
    """Send ``state`` (``"READY=1"``) to ``$NOTIFY_SOCKET``; False when unset or failing.

    The address may be a path or an abstract socket (``@name``). A failure is
    logged at WARNING, never raised.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        _log.warning("could not notify systemd (%s): %s", state, exc)
        return False
    return True
