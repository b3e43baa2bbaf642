"""Make the checkout's integration packages importable (installed or not) for these tests.

The adapters live in ``integrations/langchain`` and ``integrations/llamaindex``; putting those
folders first on ``sys.path`` tests this checkout's code even when older copies are installed.
Each test module skips itself (``pytest.importorskip``) when its framework is absent.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("integrations/llamaindex", "integrations/langchain"):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)
