"""``python -m qwen3_rag``: the ``qwen3-rag`` command line."""

from qwen3_rag.cli import main

raise SystemExit(main())
