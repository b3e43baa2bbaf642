"""Typed engine options: names, values, backends, and options as engine-cache keys."""

from __future__ import annotations

import pickle

import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.config import load_settings
from qwen3_rag.engine import get_engine, loaded_engines
from qwen3_rag.engine.options import (
    BackendOptionError,
    EngineOptions,
    FastPathOptions,
    HFOptions,
    OptionError,
    PoolOptions,
    RemoteOptions,
    VLLMOptions,
    check_value,
    known_names,
    owners,
    select,
)

MISSPELT = r"unknown engine option 'gpu_memory_utilisation'; did you mean 'gpu_memory_utilization'\?"


def test_a_misspelt_name_in_code_names_the_nearest_option(tiny_embedding, tiny_reranker):
    with pytest.raises(ValueError, match=MISSPELT):
        Qwen3Embedder(tiny_embedding, backend="hf", gpu_memory_utilisation=0.3)
    with pytest.raises(ValueError, match=MISSPELT):
        Qwen3Reranker(tiny_reranker, backend="hf", gpu_memory_utilisation=0.3)
    with pytest.raises(OptionError, match="did you mean 'max_batch_size'"):
        get_engine("embedding", tiny_embedding, "hf", max_length=64, options={"max_batch_sise": 4})
    with pytest.raises(OptionError, match=r"unknown engine option 'zzz' \(each backend's options"):
        EngineOptions.build("vllm", {"zzz": 1})


def test_a_misspelt_name_in_the_config_file_names_the_file_and_the_nearest_option(tmp_path):
    cfg = tmp_path / "qwen3-rag.toml"
    cfg.write_text("[embedding]\ngpu_memory_utilisation = 0.3\n")
    with pytest.raises(ValueError, match=rf"{cfg.name} \[embedding\]: {MISSPELT}"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    cfg.write_text("max_lenght = 512\n")
    with pytest.raises(ValueError, match="unknown setting 'max_lenght'; did you mean 'max_length'"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    cfg.write_text("max_num_seqs = 512\n")  # an engine option outside a model's table
    with pytest.raises(ValueError, match=r"'max_num_seqs' is an engine option: put it in the \[embedding\]"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})


def test_a_misspelt_environment_variable_names_the_nearest_one():
    env = {"QWEN3_RAG_GPU_MEMORY_UTILISATION": "0.3"}
    with pytest.raises(ValueError, match=r"unknown environment variable QWEN3_RAG_GPU_MEMORY_UTILISATION; "
                                         r"did you mean QWEN3_RAG_GPU_MEMORY_UTILIZATION\?"):
        load_settings(env=env, path=None)
    # variables other parts read, and other programs' variables, are fine
    load_settings(env={"QWEN3_RAG_DEBUG": "1", "QWEN3_RAG_API_KEY": "k", "OTHER_PROGRAM_X": "1"}, path=None)


def test_bad_values_are_errors_naming_the_option_and_where_it_came_from(tmp_path):
    with pytest.raises(OptionError, match="max_batch_size must be an integer, got 'many'"):
        HFOptions(max_batch_size="many")
    with pytest.raises(OptionError, match=
                       r"gpu_memory_utilization must be above 0\.0 and at most 1\.0, got 1\.5"):
        VLLMOptions(gpu_memory_utilization=1.5)
    with pytest.raises(OptionError, match="engines_per_gpu must be at least 1, got 0"):
        PoolOptions(engines_per_gpu=0)
    with pytest.raises(OptionError, match="multiprocessing must be one of"):
        VLLMOptions(multiprocessing="threads")
    with pytest.raises(OptionError, match=r"timeout must be above 0\.0"):
        RemoteOptions(base_url="http://127.0.0.1:1", timeout=0)
    with pytest.raises(OptionError, match="cuda_graphs must be true or false"):
        HFOptions(cuda_graphs="yes")
    cfg = tmp_path / "q.toml"
    cfg.write_text("[reranker]\nmax_num_seqs = 0\n")
    with pytest.raises(ValueError, match=r"q\.toml \[reranker\]: max_num_seqs must be at least 1, got 0"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    cfg.write_text('backend = "tpu"\n')
    with pytest.raises(ValueError, match=r"q\.toml: backend must be one of"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    with pytest.raises(ValueError, match="QWEN3_RAG_ENGINES_PER_GPU='0': engines_per_gpu must be at least 1"):
        load_settings(env={"QWEN3_RAG_ENGINES_PER_GPU": "0"}, path=None)
    assert check_value("gpu_memory_utilization", 1) == 1.0  # an integer is a number


def test_an_option_of_another_backend_is_an_error_in_code_but_passed_over_from_the_config(
        tmp_path, monkeypatch, tiny_embedding):
    with pytest.raises(BackendOptionError, match="'max_num_seqs' is a vllm backend option") as e:
        EngineOptions.build("hf", {"max_num_seqs": 64})
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)
    with pytest.raises(TypeError, match="'device' is an option of the hf backend"):
        EngineOptions.build("remote", {"base_url": "http://127.0.0.1:1", "device": "cpu"})
    cfg = tmp_path / "qwen3-rag.toml"
    cfg.write_text("[embedding]\nmax_num_seqs = 64\nenable_chunked_prefill = true\nbase_url = "
                   '"http://127.0.0.1:1"\nmax_batch_size = 5\n')
    monkeypatch.setenv("QWEN3_RAG_CONFIG", str(cfg))
    emb = Qwen3Embedder(tiny_embedding, backend="hf")  # vLLM and remote options reach neither
    assert emb.options.engine == HFOptions(max_batch_size=5)


def test_select_keeps_what_fits_each_backend():
    given = {"device": "cpu", "dtype": "float16", "max_num_seqs": 64, "fast_path_tokens": 4096,
             "engines_per_gpu": 2, "base_url": "http://h:1", "swap_space": 4}
    assert select("hf", given) == {"device": "cpu", "dtype": "float16", "engines_per_gpu": 2}
    assert select("vllm", given) == {"dtype": "float16", "max_num_seqs": 64, "fast_path_tokens": 4096,
                                     "engines_per_gpu": 2, "swap_space": 4}
    assert select("remote", given) == {"engines_per_gpu": 2, "base_url": "http://h:1"}
    with pytest.raises(OptionError, match="did you mean 'device'"):
        select("hf", {"devise": "cpu"})


def test_vllm_engine_arguments_pass_through_by_name():
    opts = EngineOptions.build("vllm", {"max_num_seqs": 256, "enable_chunked_prefill": False,
                                        "compilation_config": {"cudagraph_mode": "NONE", "sizes": [1, 2]}})
    kwargs = opts.engine.llm_kwargs()
    assert kwargs == {"max_num_seqs": 256, "gpu_memory_utilization": 0.35, "enable_chunked_prefill": False,
                      "compilation_config": {"cudagraph_mode": "NONE", "sizes": [1, 2]}}
    assert type(kwargs["compilation_config"]) is dict and type(kwargs["compilation_config"]["sizes"]) is list
    assert owners("enable_chunked_prefill") == ("vllm",) and "swap_space" in known_names()
    assert owners("data_parallel_size") == ("pool",)  # the pool's, never given to vLLM
    with pytest.raises(OptionError, match="did you mean 'enable_chunked_prefill'"):
        EngineOptions.build("vllm", {"enable_chunked_prefil": True})
    unhashable = type("Unhashable", (), {"__hash__": None})()
    with pytest.raises(OptionError, match="cannot be an engine option's value"):
        EngineOptions.build("vllm", {"pooler_config": unhashable})


def test_fast_path_and_pool_are_their_own_groups():
    opts = EngineOptions.build("vllm", {"fast_path_tokens": 4096, "fast_path_compile": True,
                                        "engines_per_gpu": 2, "dtype": "float16"})
    assert opts.fast_path == FastPathOptions(4096, True) and opts.pool.size == 2
    assert opts.without_fast_path().fast_path.enabled is False and not opts.without_pool().pool.enabled
    assert opts.fast_path.hf_options(opts.engine.changed())["dtype"] == "float16"
    with pytest.raises(BackendOptionError, match="fast_path_tokens is a vllm backend option"):
        EngineOptions.build("hf", {"fast_path_tokens": 4096})
    assert EngineOptions.build("hf", {"fast_path_tokens": 0}).fast_path.enabled is False  # 0: off


def test_options_are_hashable_keys_equal_however_given():
    a = EngineOptions.build("hf", {"max_batch_size": 8, "engines_per_gpu": 1})
    b = EngineOptions.build("hf", {"max_batch_size": 8})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert EngineOptions.build("hf", {"max_batch_size": 32}) == EngineOptions.build("hf")  # the default
    assert EngineOptions.build("hf", {"max_batch_size": 7}) != a
    v1 = EngineOptions.build("vllm", {"hf_overrides": {"a": [1, 2]}, "gpu_memory_utilization": 0.5})
    v2 = EngineOptions.build("vllm", {"gpu_memory_utilization": 0.5, "hf_overrides": {"a": [1, 2]}})
    assert v1 == v2 and hash(v1) == hash(v2)
    assert pickle.loads(pickle.dumps(v1)) == v1  # the pool hands them to its spawned workers
    assert v1.to_dict() == {"gpu_memory_utilization": 0.5, "hf_overrides": {"a": [1, 2]}}


def test_embedders_with_equal_options_share_one_engine(tiny_embedding, tmp_path, monkeypatch):
    a = Qwen3Embedder(tiny_embedding, backend="hf", max_batch_size=8)
    b = Qwen3Embedder(tiny_embedding, backend="hf", max_batch_size=8, engines_per_gpu=1)
    assert a.engine is b.engine
    cfg = tmp_path / "qwen3-rag.toml"
    cfg.write_text("[embedding]\nmax_batch_size = 8\nmax_num_seqs = 99\n")
    monkeypatch.setenv("QWEN3_RAG_CONFIG", str(cfg))
    n = len(loaded_engines())
    c = Qwen3Embedder(tiny_embedding, backend="hf")  # the same option from the config file
    assert c.engine is a.engine and len(loaded_engines()) == n
    assert Qwen3Embedder(tiny_embedding, backend="hf", max_batch_size=9).engine is not a.engine
