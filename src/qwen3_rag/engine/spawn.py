"""Starting engine processes with the ``spawn`` method from any script.

A spawned child re-runs the parent's main script unless ``__main__`` has no file or spec; the
engine processes (vLLM's engine core, the engine pool's workers) need nothing from ``__main__``,
so :func:`hidden_main` hides them while the children start, and scripts need no
``if __name__ == "__main__":`` guard.

Example:
    >>> import sys
    >>> from qwen3_rag.engine.spawn import hidden_main
    >>> with hidden_main():
    ...     getattr(sys.modules["__main__"], "__spec__", None) is None
    True
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def hidden_main() -> Iterator[None]:
    """Hide ``__main__``'s ``__file__`` and ``__spec__`` while processes are spawned."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__}
    try:
        for k in saved:
            setattr(main, k, None) if k == "__spec__" else delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)
