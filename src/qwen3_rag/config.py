"""One configuration for notebooks, the CLI and the service: a TOML file and environment variables.

Resolution, later wins: built-in defaults < config file < environment variables < arguments
given in code or on the command line. The file is ``$QWEN3_RAG_CONFIG`` if set, else
``./qwen3-rag.toml`` if it exists. Example file (``qwen3-rag bench --apply PATH`` writes the
``[embedding]``/``[reranker]`` tables from its sweep)::

    embedding_model = "Qwen/Qwen3-Embedding-0.6B"
    reranker_model = "Qwen/Qwen3-Reranker-0.6B"
    backend = "auto"
    max_length = 8192

    [embedding]            # engine options for the embedder (each used by the backends it fits)
    gpu_memory_utilization = 0.35
    max_num_seqs = 1024
    batch_size = 8192      # not an engine option: this model's batch_size (over the top level's)

    [reranker]
    gpu_memory_utilization = 0.35

Environment variables (see :data:`ENV_VARS`) override the file; engine-option variables apply
to both models. Engine options are those of :mod:`qwen3_rag.engine.options`: a setting, a table
key or a ``QWEN3_RAG_*`` variable that does not exist is an error naming the nearest one, and a
value its option does not take is an error naming the file or the variable.

Example:
    >>> from qwen3_rag.config import load_settings
    >>> s = load_settings(env={"QWEN3_RAG_BACKEND": "hf", "QWEN3_RAG_MAX_NUM_SEQS": "512"}, path=None)
    >>> s.backend, s.embedding["max_num_seqs"]
    ('hf', 512)
    >>> try:
    ...     load_settings(env={"QWEN3_RAG_MAX_NUM_SEQ": "512"}, path=None)
    ... except ValueError as e:
    ...     print(e)
    unknown environment variable QWEN3_RAG_MAX_NUM_SEQ; did you mean QWEN3_RAG_MAX_NUM_SEQS?
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen3_rag.engine.options import BACKEND_NAMES, OptionError, check_value, nearest, owners, select
from qwen3_rag.formats import DEFAULT_EMBEDDING_MODEL, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER_MODEL

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "QWEN3_RAG_CONFIG"
DEFAULT_CONFIG_FILE = "qwen3-rag.toml"

# variable -> (setting, type); "*" settings are engine options for both models
ENV_VARS: dict[str, tuple[str, type]] = {
    "QWEN3_RAG_EMBEDDING_MODEL": ("embedding_model", str),
    "QWEN3_RAG_RERANKER_MODEL": ("reranker_model", str),
    "QWEN3_RAG_BACKEND": ("backend", str),
    "QWEN3_RAG_MAX_LENGTH": ("max_length", int),
    "QWEN3_RAG_BATCH_SIZE": ("batch_size", int),
    "QWEN3_RAG_GPU_MEMORY_UTILIZATION": ("*gpu_memory_utilization", float),
    "QWEN3_RAG_MAX_NUM_SEQS": ("*max_num_seqs", int),
    "QWEN3_RAG_MAX_NUM_BATCHED_TOKENS": ("*max_num_batched_tokens", int),
    "QWEN3_RAG_ENGINES_PER_GPU": ("*engines_per_gpu", int),
    "QWEN3_RAG_DATA_PARALLEL_SIZE": ("*data_parallel_size", int),
    "QWEN3_RAG_DEVICE": ("*device", str),
    "QWEN3_RAG_DTYPE": ("*dtype", str),
}

#: ``QWEN3_RAG_*`` variables read elsewhere (not settings): the only others that may be set
OTHER_ENV_VARS = frozenset({
    CONFIG_ENV,
    "QWEN3_RAG_DEBUG",  # the CLI: tracebacks instead of one-line errors
    "QWEN3_RAG_API_KEY",  # qwen3-rag serve: the API key it requires
    "QWEN3_RAG_REMOTE_API_KEY",  # the CLI: the key sent to a remote backend's server
    "QWEN3_RAG_NOTEBOOK_TINY",  # the notebooks: tiny local models
    "QWEN3_RAG_CORPUS",  # the large-scale indexing notebook: its corpus
})
ENV_PREFIX = "QWEN3_RAG_"

#: settings a model's table may hold that are not engine options (they override the top level)
PER_MODEL = {"batch_size"}
TOP_LEVEL = {"embedding_model", "reranker_model", "backend", "max_length", "batch_size"}
TABLES = ("embedding", "reranker")


@dataclass
class Settings:
    """Resolved settings. ``embedding``/``reranker`` hold engine options for each model."""

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    reranker_model: str = DEFAULT_RERANKER_MODEL
    backend: str = "auto"
    max_length: int = DEFAULT_MAX_LENGTH
    batch_size: int | None = None
    embedding: dict[str, Any] = field(default_factory=dict)
    reranker: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    origins: dict[str, str] = field(default_factory=dict)
    """Where each setting not at its default came from (``"embedding.max_num_seqs"`` for a table
    entry): ``"config file PATH"``, ``"environment QWEN3_RAG_..."``, or what a caller set."""

    def set(self, name: str, value: Any, origin: str) -> None:
        """Set a top-level setting or a table entry (``"embedding.dtype"``) from ``origin``."""
        table, _, key = name.rpartition(".")
        if table:
            getattr(self, table)[key] = value
        else:
            setattr(self, name, value)
        self.origins[name] = origin

    def effective(self) -> list[tuple[str, Any, str]]:
        """Every setting in force: (name, value, where it came from; ``"default"`` where nowhere).

        Example:
            >>> load_settings(env={"QWEN3_RAG_BACKEND": "hf"}, path=None).effective()[2]
            ('backend', 'hf', 'environment QWEN3_RAG_BACKEND')
        """
        rows = [(k, getattr(self, k), self.origins.get(k, "default"))
                for k in ("embedding_model", "reranker_model", "backend", "max_length", "batch_size")]
        for table in TABLES:
            rows += [(f"{table}.{k}", v, self.origins.get(f"{table}.{k}", "default"))
                     for k, v in sorted(getattr(self, table).items())]
        return rows

    def engine_options(self, kind: str, backend: str) -> dict[str, Any]:
        """The engine options of ``kind`` that fit ``backend`` (vLLM options never reach hf:
        :func:`qwen3_rag.engine.options.select`)."""
        opts = self.embedding if kind == "embedding" else self.reranker
        return select(backend, {k: v for k, v in opts.items() if k not in PER_MODEL})

    def model_batch_size(self, kind: str) -> int | None:
        """``batch_size`` of ``kind``: its table's (what ``qwen3-rag bench --apply`` writes), else
        the top-level setting."""
        table = self.embedding if kind == "embedding" else self.reranker
        return table.get("batch_size") or self.batch_size


def _check_setting(name: str, value: Any) -> Any:
    """A top-level setting's value checked (``OptionError`` saying what it must be)."""
    if name == "backend":
        if value not in ("auto", *BACKEND_NAMES):
            raise OptionError(f"backend must be one of {('auto', *BACKEND_NAMES)}, got {value!r}")
    elif name in ("max_length", "batch_size"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name} must be a positive integer, got {value!r}")
    elif not isinstance(value, str) or not value:
        raise OptionError(f"{name} must be a model id or directory, got {value!r}")
    return value


def _check_table_entry(name: str, value: Any) -> Any:
    """A ``[embedding]``/``[reranker]`` entry checked: an engine option, or ``batch_size``."""
    if name in PER_MODEL:
        return _check_setting(name, value)
    return check_value(name, value)


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The config file in force: ``$QWEN3_RAG_CONFIG``, else ``./qwen3-rag.toml`` if present."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        p = Path(env[CONFIG_ENV]).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"{CONFIG_ENV} names a file that does not exist: {p}")
        return p
    p = Path(DEFAULT_CONFIG_FILE)
    return p if p.is_file() else None


def _unknown_setting(file: Path, key: str) -> str:
    guess = nearest(key, [*TOP_LEVEL, *TABLES])
    if guess is not None:
        return f"{file}: unknown setting {key!r}; did you mean {guess!r}?"
    if owners(key):
        return f"{file}: {key!r} is an engine option: put it in the [embedding] or [reranker] table"
    return f"{file}: unknown setting {key!r} (known: {sorted(TOP_LEVEL)}, [embedding], [reranker])"


def _read_file(file: Path, s: Settings) -> None:
    """Apply the config file ``file`` to ``s`` (every key and value checked)."""
    try:
        data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"invalid config file {file}: {e}") from e
    for key, value in data.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ValueError(f"{file}: [{key}] must be a table of engine options")
            for name, v in _read_table(file, key, value).items():
                s.set(f"{key}.{name}", v, f"config file {file}")
        elif key in TOP_LEVEL:
            try:
                s.set(key, _check_setting(key, value), f"config file {file}")
            except OptionError as e:
                raise OptionError(f"{file}: {e}") from None
        else:
            raise OptionError(_unknown_setting(file, key))
    s.source = str(file)


def _read_table(file: Path, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        try:
            out[name] = _check_table_entry(name, value)
        except OptionError as e:
            raise OptionError(f"{file} [{table}]: {e}") from None
    return out


def _check_env_names(env: Mapping[str, str]) -> None:
    """An unknown ``QWEN3_RAG_*`` variable is an error naming the nearest known one."""
    known = set(ENV_VARS) | OTHER_ENV_VARS
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in known:
            guess = nearest(var, known)
            hint = f"; did you mean {guess}?" if guess else f" (known: {', '.join(sorted(ENV_VARS))})"
            raise OptionError(f"unknown environment variable {var}{hint}")


def _read_env(env: Mapping[str, str], s: Settings) -> None:
    """Apply the ``QWEN3_RAG_*`` variables of ``env`` to ``s``."""
    _check_env_names(env)
    for var, (name, typ) in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            value = typ(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not a valid {typ.__name__}") from None
        try:
            value = check_value(name[1:], value) if name.startswith("*") else _check_setting(name, value)
        except OptionError as e:
            raise OptionError(f"{var}={raw!r}: {e}") from None
        if name.startswith("*"):
            for table in TABLES:
                s.set(f"{table}.{name[1:]}", value, f"environment {var}")
        else:
            s.set(name, value, f"environment {var}")
            if name in PER_MODEL:  # the variable beats the file's per-model value
                for table in TABLES:
                    getattr(s, table).pop(name, None)
                    s.origins.pop(f"{table}.{name}", None)


def load_settings(
    env: Mapping[str, str] | None = None, path: str | os.PathLike[str] | bool | None = True
) -> Settings:
    """Settings from the config file (``path=True``: the one in force) and ``env``."""
    env = os.environ if env is None else env
    s = Settings()
    file = config_path(env) if path is True else (Path(path) if path else None)
    if file is not None:
        _read_file(Path(file), s)
    _read_env(env, s)
    return s


def get_settings() -> Settings:
    """The settings in force now (file and environment are read on each call: cheap)."""
    return load_settings()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {v!r} to a config file")


def write_settings(path: str | os.PathLike[str], settings: Settings) -> Path:
    """Write ``settings`` as a TOML config file, atomically."""
    path = Path(path)
    lines = [f"{k} = {_toml_value(getattr(settings, k))}" for k in sorted(TOP_LEVEL)
             if getattr(settings, k) is not None]
    for table in TABLES:
        opts = getattr(settings, table)
        if opts:
            lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in sorted(opts.items()))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(f.name, file_mode(path))
    os.replace(f.name, path)
    return path


def file_mode(path: Path) -> int:
    """The permissions a file replaced atomically at ``path`` should get: the existing file's, else
    what ``open()`` gives under the umask (``0o666 & ~umask``; a temporary file gets 0o600)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def write_recommendation(path: str | os.PathLike[str], recommendation: Mapping[str, Any],
                         prefer: str = "best_throughput") -> Path:
    """Merge a ``qwen3-rag bench`` recommendation into the config file at ``path``, atomically.

    Only what was measured is written: each task's recommended engine options (its ``prefer``
    entry; ``None`` writes nothing for that task) into its table, and the ``model`` and
    ``backend`` it was measured with (where the recommendation names them) at the top level.
    The rest of the file stays as it was, comments, layout and permissions included. The
    result is checked as a config file before it replaces the old one.
    """
    import tomlkit

    p = Path(path)
    doc = tomlkit.parse(p.read_text(encoding="utf-8")) if p.is_file() else tomlkit.document()
    for task, table, model_key in (("embed", "embedding", "embedding_model"),
                                   ("rerank", "reranker", "reranker_model")):
        rec = recommendation.get(task) or {}
        if not rec.get(prefer):
            continue
        for key, value in ((model_key, rec.get("model")), ("backend", rec.get("backend"))):
            if value:
                doc[key] = value
        if table not in doc:
            doc[table] = tomlkit.table()
        for key, value in rec[prefer].items():
            doc[table][key] = value
    text = tomlkit.dumps(doc)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=p.parent, suffix=".toml", delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        _read_file(Path(f.name), Settings())  # a value no option takes fails here, not at the next start
        os.chmod(f.name, file_mode(p))
        os.replace(f.name, p)
    except BaseException:
        os.unlink(f.name)
        raise
    return p
