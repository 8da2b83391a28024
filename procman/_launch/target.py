"""The target of a run: ``"module:attr"`` resolved, and the root manager it gives."""

from __future__ import annotations

import importlib
import inspect

from procman.errors import ProcmanError
from procman.manager import ProcessManager
from procman.runnable import Runnable
from procman.snapshot import ManagerPhase

__all__ = ["ROOT_NAME", "TargetError", "build_root", "describe_target", "resolve_target"]

ROOT_NAME = "root"


class TargetError(ProcmanError, ValueError):
    """The target cannot be used: malformed, not found, or not a tree (exit status 2)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot run {target!r}: {reason}")
        self.target = target
        self.reason = reason


def _is_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def resolve_target(spec: str) -> object:
    """Import ``"module:attr"`` (``attr`` may be dotted) and return the object.

    Raises :class:`TargetError` when the string is malformed, the module does
    not exist or has no such attribute. Any other exception raised while
    importing the module (a ``ModuleNotFoundError`` for *another* module
    included) propagates: it is the application's failure.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not _is_dotted(module_name) or not _is_dotted(attr):
        raise TargetError(spec, "expected MODULE:ATTR, for example 'myapp.main:build'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise TargetError(spec, f"no module named {missing!r}") from None
        raise
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(spec, f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def describe_target(target: object) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "__qualname__", None) or type(target).__name__
    module = getattr(target, "__module__", None)
    return f"{module}:{name}" if isinstance(module, str) and module else str(name)


_NOT_A_TREE = "a ProcessManager, a Runnable or a (sync or async) factory returning one"


def _as_root(obj: object, spec: str, *, produced: bool) -> ProcessManager | None:
    if isinstance(obj, ProcessManager):
        if obj.phase is not ManagerPhase.CREATED:
            raise TargetError(spec, f"manager {obj.path!r} has already been started")
        return obj
    if isinstance(obj, Runnable):
        return ProcessManager(ROOT_NAME).insert(obj)
    if produced:
        raise TargetError(
            spec, f"the factory returned {type(obj).__name__}, not a ProcessManager or a Runnable"
        )
    return None


async def build_root(target: object, spec: str) -> ProcessManager:
    obj = resolve_target(target) if isinstance(target, str) else target
    root = _as_root(obj, spec, produced=False)
    if root is not None:
        return root
    if not callable(obj):
        raise TargetError(spec, f"{type(obj).__name__} is not {_NOT_A_TREE}")
    result = obj()
    if inspect.isawaitable(result):
        result = await result
    root = _as_root(result, spec, produced=True)
    assert root is not None
    return root
