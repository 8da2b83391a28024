"""The whole suite on every supported Python, each in its own virtualenv.

    .venv/bin/nox -s tests-3.12              # ruff, mypy --strict, pytest, then the eager subset
    .venv/bin/nox -s tests-3.13 -- eager     # only the eager subset (`-- eager -x`: with options)
    .venv/bin/nox -s tests-3.12 -- -x tests/test_guard.py    # only pytest, with these arguments

``make test`` runs the suite on the ``.venv`` interpreter itself and these
sessions for the other supported versions. Virtualenvs live in ``.nox/`` and
are reused: a session installs again only when ``pyproject.toml`` changed.

Interpreters are looked up on ``PATH`` first (``python3.12``; a pyenv shim that
does not run that version does not count), then under ``$(pyenv root)/versions``.
With ``CI`` set a missing interpreter fails the run; otherwise its session is
skipped with a message.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ("3.11", "3.12", "3.13")
# On 3.12+, this part of the suite runs again with asyncio.eager_task_factory
# installed on every test event loop (pytest --eager-tasks, see tests/conftest.py).
EAGER_TESTS = (
    "tests/test_eager_mode.py",
    "tests/test_manager.py",
    "tests/test_guard.py",
    "tests/test_restart.py",
    "tests/test_regressions.py",
    "tests/test_signal_receiver.py",
    "tests/test_builder.py",
    "tests/test_observers.py",
    "tests/test_snapshot.py",
    "tests/test_selection.py",
    "tests/test_log_correlation.py",
    "tests/test_policies.py",
    "tests/test_reliability.py",
    # Not tests/property yet: it fails under eager tasks too (see EAGER_XFAIL in
    # tests/conftest.py), and a failing Hypothesis run shrinks for 5-15 minutes.
)
# --timeout (pytest-timeout): a hung test fails after 5 minutes instead of eating the CI run
PYTEST = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=300")
IN_CI = bool(os.environ.get("CI"))

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = IN_CI


def _interpreter(candidate: Path, version: str) -> Path | None:
    """The real executable behind ``candidate`` if it runs as Python ``version``, else None.

    A pyenv shim for a version that is not selected exits non-zero: it does not count.
    """
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        return None
    try:
        out = subprocess.run(
            [
                str(candidate),
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found, _, executable = out.stdout.strip().partition(" ")
    if out.returncode != 0 or found != version:
        return None
    return Path(executable) if executable else candidate


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _release(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.name)[:3])


def find_python(version: str) -> Path | None:
    """``pythonX.Y`` on PATH, else the newest ``$(pyenv root)/versions/X.Y.*``."""
    name = f"python{version}"
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and (found := _interpreter(Path(entry) / name, version)):
            return found
    root = _pyenv_root()
    if root is not None:
        pattern = re.compile(rf"^{re.escape(version)}\.\d+$")  # CPython releases only
        found = [d for d in (root / "versions").glob(f"{version}.*") if pattern.match(d.name)]
        for d in sorted(found, key=_release, reverse=True):
            if executable := _interpreter(d / "bin" / name, version):
                return executable
    return None


def _expose_interpreters() -> None:
    """Put each interpreter found as ``pythonX.Y`` in ``.nox/.pythons``, first on PATH.

    Only the ``pythonX.Y`` names are shadowed (not ``python3`` or ``pip``), and
    nox then finds each version under the name it asks for.
    """
    links = ROOT / ".nox" / ".pythons"
    links.mkdir(parents=True, exist_ok=True)
    ignore = ROOT / ".nox" / ".gitignore"  # as nox writes it: keep .nox/ out of git
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    for version in PYTHONS:
        link = links / f"python{version}"
        if link.is_symlink() or link.exists():
            link.unlink()
        found = find_python(version)
        if found is None:
            verdict = "fails the run (CI is set)" if IN_CI else "its session is skipped"
            sys.stderr.write(
                f"nox: no Python {version} on PATH or under $(pyenv root)/versions: {verdict}\n"
            )
            continue
        link.symlink_to(found)
    os.environ["PATH"] = str(links) + os.pathsep + os.environ.get("PATH", "")


_expose_interpreters()


def _install(session: nox.Session) -> None:
    """Install procman with its test and bench extras, unless this venv already has them."""
    venv = Path(session.virtualenv.location)
    stamp = venv / ".procman-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest:
        session.log("procman[test,bench] already installed for this pyproject.toml")
        return
    session.install("--upgrade", "pip")
    session.install("-e", ".[test,bench]")
    stamp.write_text(digest + "\n", encoding="utf-8")


def _eager(session: nox.Session, *extra: str) -> None:
    session.run(*PYTEST, "--eager-tasks", "-rx", *extra, *EAGER_TESTS)


@nox.session(python=list(PYTHONS), download_python="never")
def tests(session: nox.Session) -> None:
    """ruff, mypy --strict and pytest on one Python; on 3.12+ the eager subset too."""
    _install(session)
    eager_capable = session.python not in ("3.11",)
    if session.posargs[:1] == ["eager"]:  # `-- eager [pytest options]`
        if not eager_capable:
            session.error("asyncio.eager_task_factory needs Python 3.12 or newer")
        _eager(session, *session.posargs[1:])
        return
    if session.posargs:
        session.run(*PYTEST, *session.posargs)
        return
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "procman", "procman_metrics")
    session.run("mypy", "--python-version", str(session.python))
    session.run(*PYTEST)
    if eager_capable:
        _eager(session)
