"""Serving the newest version of a store: :class:`StoreWatcher` notices a new ``CURRENT``.

A store on disk changes by whole versions: a writer (``qwen3-rag index``, ``FaissStore.save``)
writes a new version directory, then replaces the ``CURRENT`` pointer
(:mod:`qwen3_rag.store.layout`). The watcher reads the pointer every ``interval_s`` seconds;
when it names another version, the watcher loads that version in a worker thread (files
verified, embedder checked, as at start-up) while requests go on being answered from the
version in service, then swaps :attr:`ServiceState.store <qwen3_rag.service.state.ServiceState>`
in one assignment. A request reads ``state.store`` once, so each request is answered from one
version. A version that fails to load (damaged, another model) is logged and not tried again;
the service keeps the version it has until ``CURRENT`` changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from qwen3_rag.store import FaissStore
from qwen3_rag.store.layout import CURRENT

logger = logging.getLogger("qwen3_rag")


class StoreWatcher:
    """Polls the served store's ``CURRENT`` pointer and swaps in new versions.

    Args:
        state: the service's state (its ``store`` is replaced; its ``embedder`` checks a new
            version).
        interval_s: seconds between two looks at the pointer.
    """

    def __init__(self, state: Any, interval_s: float):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.state = state
        self.interval_s = interval_s
        self.path = Path(state.store.path)
        self.failed: str | None = None  # a version that did not load: not tried again
        self._task: asyncio.Task[None] | None = None

    def pointer(self) -> str | None:
        """The version ``CURRENT`` names now (``None`` when it cannot be read)."""
        try:
            return (self.path / CURRENT).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    async def check(self) -> bool:
        """Look at the pointer once; load and serve the version it names when it is new.
        Returns whether the served store changed."""
        version = self.pointer()
        if version is None or version in (self.state.store.version, self.failed):
            return False
        old = self.state.store
        try:
            new = await asyncio.to_thread(FaissStore.load, self.path, self.state.embedder, gpu=old.gpu)
        except Exception as e:  # damaged, another model, removed while loading: keep serving
            self.failed = version
            logger.warning("qwen3_rag: not serving version %s of %s, still serving %s: %s", version,
                           self.path, old.version, e)
            return False
        self.state.store = new
        self.failed = None
        logger.info("qwen3_rag: serving version %s of %s (%d documents)", new.version, self.path, len(new))
        return True

    def start(self) -> None:
        """Start polling (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # pragma: no cover - the watcher must not die
                logger.exception("qwen3_rag: checking %s for a new version failed", self.path)


__all__ = ["StoreWatcher"]
