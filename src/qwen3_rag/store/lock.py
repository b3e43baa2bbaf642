"""One writer per store directory: an OS file lock on ``STORE/.writer.lock``.

Every writer (``qwen3-rag index`` for its whole run, :meth:`FaissStore.save`, the Ray build and
the adapters' vector stores, which save through ``FaissStore``) holds an exclusive
``fcntl.flock`` on the store's lock file. The kernel releases it when the holder exits, however
it dies (SIGKILL included), so an interrupted run never blocks its resume; a writer that ends
normally removes the file. A second writer
fails at once with :class:`StoreLockedError`, naming the holder's pid and command (which the
holder writes into the lock file). Readers never take it.

Within one process the lock is re-entrant: a job that holds it can save its store.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with writer_lock(root):
    ...     with writer_lock(root):  # re-entrant in one process
    ...         pass
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qwen3_rag.store.layout import StoreError, write_error

LOCK_FILE = ".writer.lock"
"""The lock file's name in a store directory."""

try:  # pragma: no cover - the import itself
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]


class StoreLockedError(StoreError):
    """Another process is writing the store (its pid and command are in the message)."""


_held: dict[str, list[int]] = {}  # resolved store path -> [fd, depth]
_guard = threading.Lock()


def holder(root: str | os.PathLike[str]) -> str:
    """What the lock file of a store says about its holder (``"pid 123: qwen3-rag index ..."``),
    or ``""``."""
    try:
        return (Path(root) / LOCK_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _open(root: Path) -> int:
    try:
        root.mkdir(parents=True, exist_ok=True)
        return os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:  # a read-only store, a full disk: one line naming the path
        raise write_error(e, root, 0) from e


def _acquire(root: Path) -> int:
    while True:
        fd = _open(root)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, root / LOCK_FILE):
                break
            os.close(fd)  # the holder removed it as we opened it: take the new one
        except BlockingIOError:
            os.close(fd)
            who = holder(root) or "another process"
            raise StoreLockedError(f"store {root} is being written by {who}; wait for it to finish "
                                   "(one writer per store; readers need no lock)") from None
        except BaseException:
            os.close(fd)
            raise
    command = _command()
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}: {command or 'python'}\n".encode("utf-8", "replace"))
    return fd


def _command() -> str:
    """This process's command line (from ``/proc`` where it can, the program's base name)."""
    try:
        args = Path("/proc/self/cmdline").read_bytes().decode("utf-8", "replace").split("\0")[:-1]
    except OSError:
        args = [sys.executable, *sys.argv]
    if args:
        args[0] = os.path.basename(args[0])
    return " ".join(" ".join(args).split())[:500]  # one line


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _release(root: Path, fd: int) -> None:
    """Remove the lock file (a writer that dies leaves it: the next one takes it over), then
    unlock."""
    try:
        if _same_file(fd, root / LOCK_FILE):
            os.unlink(root / LOCK_FILE)
    except OSError:  # e.g. the directory was removed or made read-only
        pass
    os.close(fd)


@contextmanager
def writer_lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the store's writer lock (creating the directory and the lock file if needed).

    Raises :class:`StoreLockedError` at once when another process holds it.
    """
    path = Path(root)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    key = os.path.realpath(path)
    with _guard:
        entry = _held.get(key)
        if entry is None:
            entry = _held[key] = [_acquire(path), 0]
        entry[1] += 1
    try:
        yield
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                _release(path, entry[0])


def holds_lock(root: str | os.PathLike[str]) -> bool:
    """Whether this process holds the store's writer lock."""
    return os.path.realpath(Path(root)) in _held


__all__ = ["LOCK_FILE", "StoreLockedError", "holder", "holds_lock", "writer_lock"]
