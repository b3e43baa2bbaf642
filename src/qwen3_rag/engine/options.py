"""Engine options: every option of every backend, of the engine pool and of the fast path.

This module owns the option names. Each group is a frozen dataclass whose fields are its
options, checked when it is built (types, ranges, allowed values) and hashable, so an
:class:`EngineOptions` is part of the engine cache key (:class:`~qwen3_rag.engine.base.EngineConfig`):

* :class:`HFOptions`: the transformers backend (``device``, ``dtype``, ``max_batch_size``, ...);
* :class:`VLLMOptions`: the vLLM backend; other ``vllm.LLM`` arguments pass through (below);
* :class:`RemoteOptions`: the remote backend's HTTP client (``base_url``, ``timeout``, ...);
* :class:`PoolOptions`: the engine pool (``engines_per_gpu``, ``data_parallel_size``), any backend;
* :class:`FastPathOptions`: the vLLM backend's CUDA-graph fast path (``fast_path_tokens``).

Every way in goes through here: keyword arguments of ``Qwen3Embedder``/``Qwen3Reranker`` (and
the adapters' ``engine_kwargs``), the config file's ``[embedding]``/``[reranker]`` tables, the
``QWEN3_RAG_*`` variables, the CLI. A name that no backend knows is an error naming the nearest
valid one. A name that another backend knows is handled by where it comes from:

* given in code for this backend (:meth:`EngineOptions.build`): an error
  (:class:`BackendOptionError`), as a keyword the function does not take;
* read from the configuration (:func:`select`): passed over, so a vLLM option in the config file
  does not break the hf backend on a CPU machine ("each option reaches only the backends it fits").

vLLM pass-through: options of ``vllm.LLM`` other than :class:`VLLMOptions`' own fields go to it as
they are (``enable_chunked_prefill``, ``compilation_config``, ``hf_overrides``, ...). Their names
are checked against :data:`VLLM_ENGINE_ARGS` (the fields of vLLM's ``EngineArgs``), and, for a
name not in that list, against the ``EngineArgs`` of the vLLM installed here, if any (names that
newer vLLM versions add). ``data_parallel_size`` is the pool's, never vLLM's.

Example:
    >>> from qwen3_rag.engine.options import EngineOptions
    >>> opts = EngineOptions.build("hf", {"max_batch_size": 8, "engines_per_gpu": 2})
    >>> opts.engine.max_batch_size, opts.pool.size
    (8, 2)
    >>> opts == EngineOptions.build("hf", {"engines_per_gpu": 2, "max_batch_size": 8, "dtype": None})
    True
    >>> try:
    ...     EngineOptions.build("hf", {"gpu_memory_utilisation": 0.3})
    ... except ValueError as e:
    ...     print(e)
    unknown engine option 'gpu_memory_utilisation'; did you mean 'gpu_memory_utilization'?
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

BACKEND_NAMES = ("hf", "vllm", "remote")


class OptionError(ValueError):
    """An engine option that no backend knows, or a value its option does not accept."""


class BackendOptionError(OptionError, TypeError):
    """An option of another backend given in code for this one.

    A ``TypeError`` too (a keyword argument this backend does not take), and a ``ValueError``
    like every other option error, so the CLI reports it in one line.
    """


# --- value checks ------------------------------------------------------------------------------

Check = Callable[[str, Any], Any]


def _integer(minimum: int, *, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise OptionError(f"{name} must be at least {minimum}, got {value}")
        return value

    return check


def _number(low: float, high: float | None = None, *, low_open: bool = False,
            optional: bool = False) -> Check:
    above = f"above {low}" if low_open else f"at least {low}"
    bounds = above if high is None else f"{above} and at most {high}"

    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f"{name} must be a number, got {value!r}")
        if (value <= low if low_open else value < low) or (high is not None and value > high):
            raise OptionError(f"{name} must be {bounds}, got {value}")
        return float(value)

    return check


def _boolean(*, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            raise OptionError(f"{name} must be true or false, got {value!r}")
        return value

    return check


def _choice(*allowed: str, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if value not in allowed:
            raise OptionError(f"{name} must be one of {allowed}, got {value!r}")
        return value

    return check


def _text(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise OptionError(f"{name} must be a string, got {value!r}")
    return value


def _is_torch_dtype(value: Any) -> bool:
    return type(value).__module__ == "torch" and type(value).__name__ == "dtype"


def _dtype(allowed: tuple[str, ...], what: str) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is None or _is_torch_dtype(value) or value in allowed:
            return value
        raise OptionError(f"{name} must be {what}, got {value!r}")

    return check


def _fast_path_tokens(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{name} must be a number of tokens, got {value!r}")
    if 0 < value < 16 or value < 0:
        raise OptionError(f"{name} must be at least 16 (or 0: off), got {value}")
    return value


def check_base_url(base_url: Any) -> str:
    """``base_url`` if it is an http(s) URL, else a ``ValueError``."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise OptionError(f"base_url must be an http(s) URL, got {base_url!r}")
    return base_url


def option(default: Any, check: Check) -> Any:
    """A dataclass field that is an engine option: ``check(name, value)`` validates it."""
    return field(default=default, metadata={"check": check})


# --- hashable values for options that pass through to vLLM ---------------------------------------


class FrozenDict(Mapping[str, Any]):
    """A read-only, hashable mapping: a table-valued option (``hf_overrides``) as a cache key."""

    def __init__(self, items: Mapping[str, Any]):
        self._items = tuple(sorted((str(k), freeze(v)) for k, v in items.items()))
        self._dict = dict(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"FrozenDict({self._dict!r})"


def freeze(value: Any) -> Any:
    """``value`` made hashable: tables become :class:`FrozenDict`, lists tuples.

    Example:
        >>> freeze({"b": [1, 2], "a": {"x": 1}}) == {"a": {"x": 1}, "b": (1, 2)}
        True
    """
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        raise OptionError(f"a {type(value).__name__} cannot be an engine option's value (it is part of "
                          "the engine cache key): use numbers, strings, booleans, lists or tables") from None
    return value


def thaw(value: Any) -> Any:
    """The plain form of a :func:`freeze` d value (dicts and lists), as ``vllm.LLM`` takes it."""
    if isinstance(value, FrozenDict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


# --- the groups --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionGroup:
    """Base of the option groups: every field made with :func:`option` is checked when built."""

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))

    @classmethod
    def names(cls) -> frozenset[str]:
        """The option names of this group."""
        return frozenset(f.name for f in fields(cls) if "check" in f.metadata)

    @classmethod
    def check_value(cls, name: str, value: Any) -> Any:
        """``value`` checked (and normalised: an integer for a float option) as option ``name``."""
        check = next(f.metadata["check"] for f in fields(cls) if f.name == name)
        return check(name, value)

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if "check" in f.metadata and getattr(self, f.name) != f.default}


@dataclass(frozen=True)
class PoolOptions(OptionGroup):
    """The engine pool (:mod:`qwen3_rag.engine.pool`), for any backend.

    Attributes:
        data_parallel_size: GPUs used, one group of engine processes each.
        engines_per_gpu: engine processes per GPU (vLLM's ``gpu_memory_utilization`` is divided
            between them).
    """

    data_parallel_size: int = option(1, _integer(1))
    engines_per_gpu: int = option(1, _integer(1))

    @property
    def size(self) -> int:
        """Number of engine processes."""
        return self.data_parallel_size * self.engines_per_gpu

    @property
    def enabled(self) -> bool:
        """Whether the engines run in a pool of processes (more than one)."""
        return self.size > 1


@dataclass(frozen=True)
class FastPathOptions(OptionGroup):
    """The vLLM backend's fast path (:mod:`qwen3_rag.engine.routed`).

    Attributes:
        fast_path_tokens: calls of at most this many padded tokens replay CUDA graphs of a
            transformers copy of the model (at least 16; 0: off).
        fast_path_compile: compile the copy's decoder layers first (its ``torch_compile``).
    """

    fast_path_tokens: int = option(0, _fast_path_tokens)
    fast_path_compile: bool = option(False, _boolean())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast_path_compile and not self.fast_path_tokens:
            raise OptionError("fast_path_compile needs fast_path_tokens (the fast path it compiles)")

    @property
    def enabled(self) -> bool:
        """Whether small calls take the fast path."""
        return self.fast_path_tokens > 0

    def hf_options(self, shared: Mapping[str, Any]) -> dict[str, Any]:
        """The fast path's hf-backend options; ``shared``: the vLLM engine's ``dtype`` and
        ``trust_remote_code``, which the copy takes too (``"auto"`` dtype: bfloat16)."""
        opts: dict[str, Any] = {"device": "cuda", "cuda_graphs": True,
                                "graph_max_tokens": self.fast_path_tokens, "max_batch_size": 32,
                                "torch_compile": self.fast_path_compile}
        opts.update({k: shared[k] for k in ("dtype", "trust_remote_code") if shared.get(k) is not None})
        if opts.get("dtype") in (None, "auto"):
            opts["dtype"] = "bfloat16"
        return opts


@dataclass(frozen=True)
class BackendOptions(OptionGroup):
    """Base of one backend's options: built from a mapping that holds only its own names."""

    BACKEND: ClassVar[str] = ""

    @classmethod
    def accepts(cls, name: str) -> bool:
        """Whether ``name`` is an option of this backend."""
        return name in cls.names()

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> BackendOptions:
        """The options of this backend; a name of another backend is a :class:`BackendOptionError`."""
        check_names(options)
        foreign = [k for k in options if not cls.accepts(k)]
        if foreign:
            raise BackendOptionError(f"unknown option(s) for the {cls.BACKEND} backend: "
                                     + "; ".join(f"{k!r} is {_owner_phrase(k)}" for k in foreign))
        return cls(**options)

    @classmethod
    def coerce(cls, options: BackendOptions | EngineOptions | Mapping[str, Any] | None) -> Any:
        """``options`` as this class: as they are, an :class:`EngineOptions`' ``engine``, or built
        from a mapping (what code that makes an engine directly may pass)."""
        if isinstance(options, EngineOptions):
            options = options.engine
        if isinstance(options, cls):
            return options
        if options is None or isinstance(options, Mapping):
            return cls.from_mapping(options or {})
        raise TypeError(f"{cls.BACKEND} engine options must be {cls.__name__} or a mapping, "
                        f"got {type(options).__name__}")


HF_DTYPES = ("float32", "float", "bfloat16", "float16", "half", "float64", "double")
HF_DTYPE_TEXT = "a torch dtype name (float32, bfloat16, float16)"


@dataclass(frozen=True)
class HFOptions(BackendOptions):
    """The transformers backend (:mod:`qwen3_rag.engine.hf`).

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` (default: cuda when available); checked by
            torch when the engine loads.
        dtype: a torch dtype or its name (default float32 on CPU, bfloat16 on GPU).
        max_batch_size: most sequences per forward.
        max_batch_tokens: most padded tokens per forward.
        attn_implementation: transformers' attention implementation (``"sdpa"``, ``"eager"``...).
        trust_remote_code: let transformers run the checkpoint's own code.
        tokenizer: where the tokenizer comes from (default: the model).
        cuda_graphs: replay CUDA graphs for small batches (default: on for a CUDA device).
        graph_max_tokens: the largest padded batch a graph holds, in tokens.
        torch_compile: compile each decoder layer with ``torch.compile(dynamic=True)``.
    """

    BACKEND: ClassVar[str] = "hf"

    device: str | None = option(None, _text)
    dtype: str | object | None = option(None, _dtype(HF_DTYPES, HF_DTYPE_TEXT))
    max_batch_size: int = option(32, _integer(1))
    max_batch_tokens: int = option(16384, _integer(1))
    attn_implementation: str | None = option(None, _text)
    trust_remote_code: bool = option(False, _boolean())
    tokenizer: str | None = option(None, _text)
    cuda_graphs: bool | None = option(None, _boolean(optional=True))
    graph_max_tokens: int = option(8192, _integer(16))
    torch_compile: bool = option(False, _boolean())


VLLM_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")

#: The fields of vLLM's ``EngineArgs`` (what ``vllm.LLM`` takes as keyword arguments), less
#: ``model`` (the embedder's or reranker's) and ``data_parallel_size`` (the engine pool's).
VLLM_ENGINE_ARGS = frozenset("""
    served_model_name tokenizer hf_config_path runner convert task skip_tokenizer_init
    enable_prompt_embeds tokenizer_mode trust_remote_code allowed_local_media_path
    allowed_media_domains download_dir safetensors_load_strategy load_format config_format dtype
    kv_cache_dtype seed max_model_len cuda_graph_sizes cudagraph_capture_sizes
    max_cudagraph_capture_size distributed_executor_backend pipeline_parallel_size
    tensor_parallel_size decode_context_parallel_size data_parallel_rank data_parallel_start_rank
    data_parallel_size_local data_parallel_address data_parallel_rpc_port data_parallel_hybrid_lb
    data_parallel_backend enable_expert_parallel all2all_backend enable_dbo
    dbo_decode_token_threshold dbo_prefill_token_threshold disable_nccl_for_dp_synchronization
    eplb_config enable_eplb expert_placement_strategy num_redundant_experts eplb_window_size
    eplb_step_interval eplb_log_balancedness max_parallel_loading_workers block_size
    enable_prefix_caching prefix_caching_hash_algo disable_sliding_window disable_cascade_attn
    swap_space cpu_offload_gb gpu_memory_utilization kv_cache_memory_bytes max_num_batched_tokens
    max_num_partial_prefills max_long_partial_prefills long_prefill_token_threshold max_num_seqs
    max_logprobs logprobs_mode disable_log_stats aggregate_engine_logging revision code_revision
    rope_scaling rope_theta hf_token hf_overrides tokenizer_revision quantization enforce_eager
    disable_custom_all_reduce limit_mm_per_prompt enable_mm_embeds interleave_mm_strings
    media_io_kwargs mm_processor_kwargs disable_mm_preprocessor_cache mm_processor_cache_gb
    mm_processor_cache_type mm_shm_cache_max_object_size_mb mm_encoder_tp_mode
    mm_encoder_attn_backend io_processor_plugin skip_mm_profiling video_pruning_rate enable_lora
    max_loras max_lora_rank default_mm_loras fully_sharded_loras max_cpu_loras lora_dtype
    lora_extra_vocab_size ray_workers_use_nsight num_gpu_blocks_override num_lookahead_slots
    model_loader_extra_config ignore_patterns enable_chunked_prefill disable_chunked_mm_input
    disable_hybrid_kv_cache_manager structured_outputs_config reasoning_parser
    guided_decoding_backend guided_decoding_disable_fallback guided_decoding_disable_any_whitespace
    guided_decoding_disable_additional_properties logits_processor_pattern speculative_config
    show_hidden_metrics_for_version otlp_traces_endpoint collect_detailed_traces scheduling_policy
    scheduler_cls pooler_config override_pooler_config compilation_config worker_cls
    worker_extension_cls kv_transfer_config kv_events_config generation_config enable_sleep_mode
    override_generation_config model_impl override_attention_dtype calculate_kv_scales
    mamba_cache_dtype mamba_ssm_cache_dtype mamba_block_size additional_config use_tqdm_on_load
    pt_load_map_location logits_processors async_scheduling kv_sharing_fast_prefill
""".split())


@functools.cache
def installed_vllm_engine_args() -> frozenset[str]:
    """The ``EngineArgs`` fields of the vLLM installed here (empty without vLLM).

    Consulted only for a name missing from :data:`VLLM_ENGINE_ARGS` (it imports vLLM's engine
    arguments, which takes seconds).
    """
    if importlib.util.find_spec("vllm") is None:
        return frozenset()
    try:
        from vllm.engine.arg_utils import EngineArgs
    except Exception:  # a broken or partial install: only the documented names then
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(EngineArgs)) - {"model", "data_parallel_size"}


def is_vllm_engine_arg(name: str) -> bool:
    """Whether ``name`` passes through to ``vllm.LLM``."""
    return name in VLLM_ENGINE_ARGS or (not name.startswith("_") and name in installed_vllm_engine_args())


@dataclass(frozen=True)
class VLLMOptions(BackendOptions):
    """The vLLM backend (:mod:`qwen3_rag.engine.vllm`). Fields left ``None`` take vLLM's defaults.

    Attributes:
        gpu_memory_utilization: fraction of the GPU's memory for this engine (the default leaves
            room for an embedder and a reranker on one GPU).
        multiprocessing: where vLLM's engine core runs: ``"spawn"`` (a spawned process; the
            default, ``None``), ``"off"`` (this process; pool workers' default) or ``"fork"``.
        kv_cache_memory_bytes: the KV cache's size (then no memory profiling: a pool's engines
            on one GPU are built at once).
        max_num_seqs: sequences per scheduler step.
        max_num_batched_tokens: tokens per scheduler step.
        tensor_parallel_size: GPUs per engine.
        enable_prefix_caching: reuse the KV cache of shared prefixes.
        enforce_eager: no CUDA graphs in vLLM.
        dtype: ``"auto"``, ``"bfloat16"``, ``"float16"``, ``"float32"``... or a torch dtype.
        trust_remote_code: let vLLM run the checkpoint's own code.
        tokenizer: where the tokenizer comes from (default: the model).
        passthrough: other ``vllm.LLM`` arguments, ``(name, value)`` sorted by name (values
            made hashable with :func:`freeze`; :meth:`llm_kwargs` gives them back plain).
    """

    BACKEND: ClassVar[str] = "vllm"

    gpu_memory_utilization: float = option(0.35, _number(0.0, 1.0, low_open=True))
    multiprocessing: str | None = option(None, _choice("spawn", "off", "fork", optional=True))
    kv_cache_memory_bytes: int | None = option(None, _integer(1, optional=True))
    max_num_seqs: int | None = option(None, _integer(1, optional=True))
    max_num_batched_tokens: int | None = option(None, _integer(1, optional=True))
    tensor_parallel_size: int | None = option(None, _integer(1, optional=True))
    enable_prefix_caching: bool | None = option(None, _boolean(optional=True))
    enforce_eager: bool | None = option(None, _boolean(optional=True))
    dtype: str | object | None = option(None, _dtype(VLLM_DTYPES, f"one of {VLLM_DTYPES} or a torch dtype"))
    trust_remote_code: bool | None = option(None, _boolean(optional=True))
    tokenizer: str | None = option(None, _text)
    passthrough: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        items = dict(self.passthrough)
        for name in items:
            if name in self.names() or not is_vllm_engine_arg(name):
                raise OptionError(f"{name!r} is not a vLLM engine argument to pass through")
        object.__setattr__(self, "passthrough", tuple(sorted((k, freeze(v)) for k, v in items.items())))

    @classmethod
    def accepts(cls, name: str) -> bool:
        return name in cls.names() or is_vllm_engine_arg(name)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> BackendOptions:
        check_names(options)
        own = {k: v for k, v in options.items() if k in cls.names()}
        rest = {k: v for k, v in options.items() if k not in own}
        foreign = [k for k in rest if not is_vllm_engine_arg(k)]
        if foreign:
            raise BackendOptionError("unknown option(s) for the vllm backend: "
                                     + "; ".join(f"{k!r} is {_owner_phrase(k)}" for k in foreign))
        return cls(**own, passthrough=tuple(rest.items()))

    @property
    def start_method(self) -> str:
        """Where the engine core runs (``multiprocessing``, default ``"spawn"``)."""
        return self.multiprocessing or "spawn"

    def llm_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``vllm.LLM``: fields that are set, then the pass-through ones."""
        kwargs = {k: v for k, v in self.changed().items() if k != "multiprocessing"}
        kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
        kwargs.update({k: thaw(v) for k, v in self.passthrough})
        return kwargs


SERVERS = ("auto", "vllm", "qwen3-rag")


@dataclass(frozen=True)
class RemoteOptions(BackendOptions):
    """The remote backend's client (:mod:`qwen3_rag.engine.remote`).

    Attributes:
        base_url: the server, e.g. ``http://127.0.0.1:8000`` (required).
        api_key: sent as a Bearer token.
        timeout: seconds per request.
        max_retries: retries (exponential backoff) on connection errors, timeouts, 429 and 5xx.
        backoff: seconds before the first retry (doubled each time, with jitter).
        server: ``"auto"`` (asks ``GET /health``), ``"vllm"`` or ``"qwen3-rag"``.
        batch_size: sequences per HTTP request.
        tokenizer: where the client-side tokenizer comes from (default: the model).
    """

    BACKEND: ClassVar[str] = "remote"

    base_url: str | None = option(None, _text)
    api_key: str | None = option(None, _text)
    timeout: float = option(60.0, _number(0.0, low_open=True))
    max_retries: int = option(3, _integer(0))
    backoff: float = option(0.5, _number(0.0))
    server: str = option("auto", _choice(*SERVERS))
    batch_size: int = option(128, _integer(1))
    tokenizer: str | None = option(None, _text)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base_url:
            raise OptionError("the remote backend needs base_url=, e.g. base_url='http://127.0.0.1:8000'")
        check_base_url(self.base_url)


BACKEND_OPTIONS: dict[str, type[BackendOptions]] = {"hf": HFOptions, "vllm": VLLMOptions,
                                                    "remote": RemoteOptions}
GROUPS: dict[str, type[OptionGroup]] = {**BACKEND_OPTIONS, "pool": PoolOptions, "fast_path": FastPathOptions}
_LABELS = {"hf": "the hf backend", "vllm": "the vllm backend", "remote": "the remote backend",
           "pool": "the engine pool", "fast_path": "the vllm backend (its fast path)"}


# --- names ------------------------------------------------------------------------------------


def owners(name: str) -> tuple[str, ...]:
    """The groups (``"hf"``, ``"vllm"``, ``"remote"``, ``"pool"``, ``"fast_path"``) that take ``name``.

    Example:
        >>> owners("dtype"), owners("engines_per_gpu"), owners("enable_chunked_prefill")
        (('hf', 'vllm'), ('pool',), ('vllm',))
    """
    found = tuple(g for g, cls in GROUPS.items() if name in cls.names())
    if "vllm" not in found and is_vllm_engine_arg(name):
        found = (*found, "vllm")
    return found


def _owner_phrase(name: str) -> str:
    found = owners(name)
    if found in (("vllm",), ("fast_path",)):
        return "a vllm backend option"
    return "an option of " + " and ".join(_LABELS[g] for g in found)


def known_names() -> frozenset[str]:
    """Every engine option name of this package and of vLLM's ``EngineArgs``."""
    return frozenset().union(*(cls.names() for cls in GROUPS.values()), VLLM_ENGINE_ARGS)


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (a likely misspelling), or None."""
    matches = difflib.get_close_matches(name, sorted(candidates), n=1)
    return matches[0] if matches else None


def unknown_message(name: str, what: str = "engine option") -> str:
    """``unknown engine option 'x'; did you mean 'y'?`` (without a close name: where to look)."""
    guess = nearest(name, known_names())
    if guess is not None:
        return f"unknown {what} {name!r}; did you mean {guess!r}?"
    return f"unknown {what} {name!r} (each backend's options: qwen3_rag.engine.options)"


def check_names(names: Iterable[str]) -> None:
    """Raise :class:`OptionError` for the first name that no backend knows."""
    for name in names:
        if not isinstance(name, str):
            raise OptionError(f"engine option names are strings, got {name!r}")
        if not owners(name):
            raise OptionError(unknown_message(name))


def check_value(name: str, value: Any) -> Any:
    """``value`` checked as option ``name`` of any group that takes it (what a config file may
    hold for several backends); a pass-through vLLM value only has to be hashable once frozen.

    Example:
        >>> check_value("gpu_memory_utilization", 1)
        1.0
    """
    check_names([name])
    errors = []
    for group in owners(name):
        cls = GROUPS[group]
        if name not in cls.names():  # a vLLM argument that passes through
            freeze(value)
            return value
        try:
            return cls.check_value(name, value)
        except OptionError as e:
            errors.append(e)
    raise errors[0]


def select(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``options`` that fit ``backend`` (its own, the pool's, and on vLLM the fast
    path's); names of other backends are passed over, unknown names are an :class:`OptionError`.

    Example:
        >>> select("hf", {"device": "cpu", "max_num_seqs": 64, "engines_per_gpu": 2})
        {'device': 'cpu', 'engines_per_gpu': 2}
    """
    check_names(options)
    fits = {backend, "pool"} | ({"fast_path"} if backend == "vllm" else set())
    return {k: v for k, v in options.items() if fits.intersection(owners(k))}


# --- all of an engine's options -------------------------------------------------------------------


@dataclass(frozen=True)
class EngineOptions:
    """Every option of one engine: its backend's, the pool's and the fast path's.

    Hashable and compared by value, so engines with equal options are one engine
    (:func:`qwen3_rag.engine.get_engine`), whatever way the options were given.
    """

    engine: BackendOptions
    pool: PoolOptions = field(default_factory=PoolOptions)
    fast_path: FastPathOptions = field(default_factory=FastPathOptions)

    def __post_init__(self) -> None:
        if self.fast_path.enabled and self.backend != "vllm":
            hint = ("; the hf backend replays CUDA graphs itself (cuda_graphs, graph_max_tokens)"
                    if self.backend == "hf" else "")
            raise BackendOptionError(f"fast_path_tokens is a vllm backend option (got backend "
                                     f"{self.backend!r}){hint}")

    @property
    def backend(self) -> str:
        """``"hf"``, ``"vllm"`` or ``"remote"``."""
        return self.engine.BACKEND

    @property
    def tokenizer(self) -> str | None:
        """Where the tokenizer comes from (``None``: the model)."""
        return getattr(self.engine, "tokenizer", None)

    @classmethod
    def build(cls, backend: str, options: EngineOptions | Mapping[str, Any] | None = None) -> EngineOptions:
        """The options of a ``backend`` engine from ``options`` as given in code: a name that no
        backend knows is an :class:`OptionError`, one of another backend a :class:`BackendOptionError`."""
        if backend not in BACKEND_OPTIONS:
            raise ValueError(f"backend must be one of {BACKEND_NAMES}, got {backend!r}")
        if isinstance(options, EngineOptions):
            if options.backend != backend:
                raise ValueError(f"options of the {options.backend} backend given for {backend!r}")
            return options
        given = dict(options or {})
        check_names(given)
        groups: dict[str, dict[str, Any]] = {"pool": {}, "fast_path": {}, "engine": {}}
        for key, value in given.items():
            group = next((g for g in ("pool", "fast_path") if key in GROUPS[g].names()), "engine")
            groups[group][key] = value
        fast_path = FastPathOptions(**groups["fast_path"])
        return cls(BACKEND_OPTIONS[backend].from_mapping(groups["engine"]), PoolOptions(**groups["pool"]),
                   fast_path)

    def without_pool(self) -> EngineOptions:
        """These options for one engine of a pool."""
        return replace(self, pool=PoolOptions())

    def without_fast_path(self) -> EngineOptions:
        """These options without the fast path (the vLLM engine behind it)."""
        return replace(self, fast_path=FastPathOptions())

    def to_dict(self) -> dict[str, Any]:
        """The options that differ from their defaults, by name (pass-through vLLM ones plain)."""
        out = {**self.engine.changed(), **self.pool.changed(), **self.fast_path.changed()}
        if isinstance(self.engine, VLLMOptions):
            out.update({k: thaw(v) for k, v in self.engine.passthrough})
        return out


__all__ = [
    "BACKEND_NAMES",
    "VLLM_ENGINE_ARGS",
    "BackendOptionError",
    "BackendOptions",
    "EngineOptions",
    "FastPathOptions",
    "HFOptions",
    "OptionError",
    "PoolOptions",
    "RemoteOptions",
    "VLLMOptions",
    "check_names",
    "check_value",
    "known_names",
    "owners",
    "select",
]
