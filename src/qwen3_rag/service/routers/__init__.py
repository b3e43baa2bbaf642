"""The service's routes, one module per endpoint group; :func:`qwen3_rag.service.create_app`
includes those its models and store allow.

- :mod:`.embeddings`: ``POST /v1/embeddings`` (OpenAI-compatible)
- :mod:`.rerank`: ``POST /rerank`` (alias ``/v1/rerank``) and ``POST /classify`` (vLLM-compatible)
- :mod:`.search`: ``POST /search`` over the store
- :mod:`.health`: ``GET /health`` and ``GET /metrics``
- :mod:`.unavailable`: 404s naming what a service was started without
"""
