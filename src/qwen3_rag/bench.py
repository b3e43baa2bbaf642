"""``qwen3-rag bench`` / ``python -m qwen3_rag.bench``: throughput of the engine layer.

Synthetic workloads against a model id or path (``random:0.6B`` writes a random-weight
checkpoint of the real shapes first; weights don't change speed):

* ``articles``: short article-like documents (~50 tokens, :func:`article_docs`; ``seed`` is
  accepted for it too),
* ``tokens:N``: documents of N tokens (``-n`` scaled down by N/50 documents),
* ``grid:QxD[:T]``: Q queries x D documents of T tokens (default 55, ~139 tokens per prompt)
  for the reranker, grouped by query.

Each engine setting of the sweep is timed ``--repeats`` times after a warm-up; the table shows
the median docs/s with the spread of the runs (slowest to fastest), tokens/s, % of the bf16
matmul ceiling, GPU memory and host RSS. Baselines run in the same process
(``--baselines``): sentence-transformers with last-token pooling, and a reranker that
generates one token with logprobs (the common way to run Qwen3-Reranker on vLLM). It ends with
a recommendation (best throughput, best throughput per GiB of GPU memory), made only where
one setting's slowest run beats every other setting's fastest: a difference within the spread
of the runs is noise, and nothing is recommended then. ``--apply PATH`` writes it into a config
file, with the model and backend measured, keeping the file's comments, layout and mode.
``--json`` prints the results (rows and recommendation) for programs.

Example (CPU, tiny model)::

    python -m qwen3_rag.bench --model random:tiny --backend hf --workload articles -n 64
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

TOPICS = [
    "machine learning",
    "climate change",
    "quantum computing",
    "renewable energy",
    "genomics",
    "space exploration",
    "cybersecurity",
    "urban planning",
    "neuroscience",
    "economics",
]
PEAK_BF16_TFLOPS = 800.0  # dense bf16 matmul of an H100/H200 as measured (docs/performance.md)


def article_docs(n: int, seed: int = 0) -> list[str]:
    """Short article-like documents on a few topics (~50 tokens each), reproducible from ``seed``."""
    rng = random.Random(seed)
    return [
        f"Document {i}: This is a comprehensive article about {rng.choice(TOPICS)}. It covers the "
        f"latest research findings, practical applications, and future directions in the field. "
        f"Experts discuss key challenges and opportunities for {rng.choice(TOPICS)}."
        for i in range(n)
    ]


def token_docs(n: int, tokens: int, tokenizer: Any, seed: int = 0) -> list[str]:
    """Documents of about ``tokens`` tokens each (distinct texts)."""
    rng = np.random.default_rng(seed)
    words = " ".join(article_docs(200, seed)).split()
    base = tokenizer.encode(" ".join(words * 20), add_special_tokens=False)
    out = []
    for _ in range(n):
        start = int(rng.integers(0, len(base) - tokens - 1))
        out.append(tokenizer.decode(base[start : start + tokens]))
    return out


def flops_per_token(config: Any) -> float:
    """2 x non-embedding parameters (matmul FLOPs of one token through the transformer)."""
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    hd = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q = config.num_attention_heads * hd
    kv = config.num_key_value_heads * hd
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    return 2.0 * n * per_layer


def gpu_used_gib() -> float | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**30
    except Exception:
        return None


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def resolve_model(spec: str, kind: str, workdir: str) -> str:
    """``random:SIZE`` writes a random-weight checkpoint; anything else is used as is."""
    if not spec.startswith("random:"):
        return spec
    from qwen3_rag.testing import make_qwen3, make_tiny_qwen3

    size = spec.split(":", 1)[1]
    path = os.path.join(workdir, f"{kind}-{size}")
    if os.path.isdir(path):
        return path
    if size == "tiny":
        return make_tiny_qwen3(path, kind=kind)
    return make_qwen3(path, size)


def parse_sweep(spec: str | None) -> list[dict[str, Any]]:
    """``"a=1,2;b=x"`` -> the cartesian product [{a:1,b:x},{a:2,b:x}]."""
    if not spec:
        return [{}]
    keys, values = [], []
    for part in spec.split(";"):
        k, v = part.split("=", 1)
        keys.append(k.strip())
        values.append([parse_value(x) for x in v.split(",")])
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def parse_value(x: str) -> Any:
    """A number, a boolean, a JSON object or list (``{"cudagraph_mode": "NONE"}``), or the string.

    Example:
        >>> parse_value("8"), parse_value("true"), parse_value('{"mode": 0}'), parse_value("bf16")
        (8, True, {'mode': 0}, 'bf16')
    """
    x = x.strip()
    if x.startswith(("{", "[")):
        try:
            return json.loads(x)
        except ValueError as e:
            raise ValueError(f"option value {x!r} is not valid JSON: {e}") from None
    for cast in (int, float):
        try:
            return cast(x)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(x.lower(), x)


class Monitor:
    """GPU utilisation (NVML) and CPU use per process (``/proc``) while a workload runs.

    Tells which side limits a run: a GPU far from 100% busy while one process sits at 100% of
    a core means that process (tokenization, vLLM's front end or its engine core) is the
    bottleneck. Both parts are optional: without NVML or ``/proc`` their fields stay ``None``.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.gpu: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu0: dict[int, tuple[str, float]] = {}
        self._t0 = 0.0
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = [int(x) for x in visible.split(",")] if visible else range(pynvml.nvmlDeviceGetCount())
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in ids]
            self._nvml = pynvml
        except Exception:
            self._handles = []

    @staticmethod
    def _cpu_seconds() -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        for pid in [os.getpid(), *descendants(os.getpid())]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            out[pid] = ("main" if pid == os.getpid() else name, (int(fields[11]) + int(fields[12])) / tick)
        return out

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                utils = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
                self.gpu.append(sum(utils) / len(utils))

    def __enter__(self) -> Monitor:
        self._cpu0 = self._cpu_seconds()
        self._t0 = time.perf_counter()
        if self._handles:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        end = self._cpu_seconds()
        busy = []
        for pid, (name, sec) in end.items():
            start = self._cpu0.get(pid, (name, 0.0))[1]
            busy.append((100.0 * (sec - start) / max(wall, 1e-9), name))
        self.cpu = sorted(busy, reverse=True)[:8]

    def summary(self) -> dict[str, Any]:
        """``gpu_util`` (mean %, all visible GPUs) and ``cpu_top`` (busiest processes, % of a core)."""
        return {
            "gpu_util": round(float(np.mean(self.gpu)), 1) if self.gpu else None,
            "cpu_top": [f"{name}:{pct:.0f}" for pct, name in getattr(self, "cpu", [])] or None,
        }


def descendants(pid: int) -> list[int]:
    """The process ids below ``pid`` (children, their children, ...), from ``/proc``; [] elsewhere."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    return [d for k in kids for d in (k, *descendants(k))]


def _release() -> None:
    from qwen3_rag.engine import shutdown_engines

    shutdown_engines()
    gc.collect()


def _row(task: str, backend: str, options: dict[str, Any], workload: str, n: int, ntok: int,
         times: list[float], startup: float, fpt: float) -> dict:
    seconds = float(np.median(times))
    return {
        "task": task, "backend": backend, "options": options, "workload": workload, "n": n,
        "startup_s": round(startup, 1), "seconds": round(seconds, 3),
        "items_per_s": n / seconds, "items_per_s_runs": [n / t for t in times],
        "spread_pct": 100 * seconds * (1 / min(times) - 1 / max(times)),  # fastest - slowest, of the median
        "tokens_per_s": ntok / seconds,
        "pct_bf16_ceiling": 100 * ntok / seconds * fpt / (PEAK_BF16_TFLOPS * 1e12),
        "gpu_gib": gpu_used_gib(), "rss_gib": rss_gib(),
    }


def _times(fn: Any, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _bench_model(task: str, make: Any, run: Any, token_ids: Any, warm: int,
                 workloads: dict[str, list[Any]], options: dict[str, Any], repeats: int) -> list[dict]:
    """Start one model (one engine) and time ``run`` on every workload after a warm-up."""
    from transformers import AutoConfig

    t0 = time.perf_counter()
    try:
        model = make()
        pool = getattr(model.engine, "pool", None)  # engine pools say where their start-up went
        if pool is not None:
            pool.wait_ready()  # a pool takes work once one worker is ready; time the steady state
    except Exception as e:  # one setting that can't start doesn't end the sweep
        print(f"{task} {options}: failed to start: {type(e).__name__}: {e}"[:2000], flush=True)
        _release()
        return [{"task": task, "backend": "failed", "options": options, "workload": "-", "n": 0,
                 "error": f"{type(e).__name__}: {e}"[:500]}]
    startup = time.perf_counter() - t0
    detail = {"startup_workers": pool.startup["workers"]} if pool is not None else {}
    fpt = flops_per_token(AutoConfig.from_pretrained(model.engine.config.model))
    rows = []
    for name, items in workloads.items():
        run(model, items[: min(len(items), warm)])
        ntok = sum(len(t) for t in token_ids(model, items))
        with Monitor() as mon:
            times = _times(lambda items=items: run(model, items), repeats)
        rows.append({**_row(task, model.backend, options, name, len(items), ntok, times, startup, fpt),
                     **mon.summary(), **detail})
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    _release()
    return rows


def bench_embed(model: str, backend: str, workloads: dict[str, list[str]], options: dict[str, Any],
                repeats: int) -> list[dict]:
    """Time one embedder (one engine start) on every embedding workload."""
    from qwen3_rag import Qwen3Embedder

    return _bench_model(
        "embed", lambda: Qwen3Embedder(model, backend=backend, **options),
        lambda m, texts: m.embed_documents(texts), lambda m, texts: m.formatter.documents(texts),
        2048, workloads, options, repeats,
    )


def bench_rerank(model: str, backend: str, workloads: dict[str, list[tuple[str, str]]],
                 options: dict[str, Any], repeats: int) -> list[dict]:
    """Time one reranker (one engine start) on every reranking workload."""
    from qwen3_rag import Qwen3Reranker

    return _bench_model(
        "rerank", lambda: Qwen3Reranker(model, backend=backend, **options),
        lambda m, pairs: m.score_pairs(pairs), lambda m, pairs: m.formatter.pairs(pairs),
        1024, workloads, options, repeats,
    )


def baseline_sentence_transformers(model: str, texts: list[str], batch_size: int = 256) -> dict:
    """sentence-transformers with last-token pooling (the common way to run Qwen3-Embedding)."""
    from sentence_transformers import SentenceTransformer, models

    tf = models.Transformer(
        model, max_seq_length=8192, tokenizer_args={"padding_side": "left"}, model_args={"dtype": "bfloat16"}
    )
    pool = models.Pooling(tf.get_word_embedding_dimension(), pooling_mode="lasttoken")
    st = SentenceTransformer(modules=[tf, pool, models.Normalize()], device="cuda")
    st.encode(texts[:512], batch_size=batch_size)
    t0 = time.perf_counter()
    st.encode(texts, batch_size=batch_size)
    sec = time.perf_counter() - t0
    del st
    gc.collect()
    return {
        "task": "embed",
        "backend": "sentence-transformers",
        "options": {"batch_size": batch_size},
        "n": len(texts),
        "seconds": round(sec, 3),
        "items_per_s": len(texts) / sec,
    }


def baseline_generate_logprobs(model: str, pairs: list[tuple[str, str]]) -> dict:
    """The generate-based reranker: generate one token with logprobs and read yes/no from top-k."""
    from vllm import LLM, SamplingParams

    from qwen3_rag.engine.vllm import start_method
    from qwen3_rag.formats import RERANK_PREFIX, RERANK_SUFFIX, format_rerank_body

    with start_method("spawn"):
        llm = LLM(model=model, max_model_len=8192, gpu_memory_utilization=0.35)
    prompts = [RERANK_PREFIX + format_rerank_body(q, d) + RERANK_SUFFIX for q, d in pairs]
    params = SamplingParams(max_tokens=1, logprobs=20, temperature=0.0)
    llm.generate(prompts[:256], params, use_tqdm=False)
    t0 = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    sec = time.perf_counter() - t0
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    return {
        "task": "rerank",
        "backend": "vllm generate+logprobs",
        "options": {},
        "n": len(pairs),
        "seconds": round(sec, 3),
        "items_per_s": len(pairs) / sec,
    }


def _gmeans(rs: list[dict], per_gib: bool = False) -> tuple[float, float, float]:
    """(slowest, median, fastest) items/s of one setting (per GiB of GPU memory with ``per_gib``),
    geometric means over the workloads it ran; the slowest and fastest are the median without
    several runs."""
    def gmean(vals: list[float]) -> float:
        return float(np.exp(np.mean(np.log(vals))))

    div = [r["gpu_gib"] if per_gib else 1.0 for r in rs]
    runs = [r.get("items_per_s_runs") or [r["items_per_s"]] for r in rs]
    return (gmean([min(x) / d for x, d in zip(runs, div, strict=True)]),
            gmean([r["items_per_s"] / d for r, d in zip(rs, div, strict=True)]),
            gmean([max(x) / d for x, d in zip(runs, div, strict=True)]))


def _choose(by_opts: dict[str, list[dict]], per_gib: bool) -> tuple[str | None, str]:
    """The setting (its JSON key) whose slowest run beats every other setting's fastest, else
    ``None`` and why not. Independent of the sweep's order."""
    ranges = {k: _gmeans(rs, per_gib) for k, rs in by_opts.items()}
    ranked = sorted(ranges, key=lambda k: (-ranges[k][1], k))
    best = ranked[0]
    if len(ranked) == 1:
        return None, "one setting measured: nothing to compare it with"
    if any(len(r.get("items_per_s_runs") or []) < 2 for rs in by_opts.values() for r in rs):
        return None, "one run per setting: the spread is unknown (--repeats 2 or more)"
    ties = [k for k in ranked[1:] if ranges[k][2] >= ranges[best][0]]
    if ties:
        return None, (f"{best} is not faster than {', '.join(ties)} beyond the spread of the runs "
                      f"({ranges[best][0]:.1f}-{ranges[best][2]:.1f} items/s): keep the current settings")
    return best, ""


def recommend(rows: Sequence[dict]) -> dict[str, Any]:
    """Per task, the engine options with the best throughput and with the best throughput per
    GiB of GPU memory (geometric mean of the medians over the workloads each setting ran),
    where they beat every other setting beyond the spread of the runs (``None`` and a
    ``reason`` otherwise); with the ``backend`` measured."""
    rec: dict[str, Any] = {}
    for task in ("embed", "rerank"):
        ours = [r for r in rows if r["task"] == task and r["backend"] in ("vllm", "hf", "remote")]
        by_opts: dict[str, list[dict]] = {}
        for r in ours:
            by_opts.setdefault(json.dumps(r["options"], sort_keys=True), []).append(r)
        if not by_opts:
            continue
        best, why = _choose(by_opts, per_gib=False)
        rec[task] = {"backend": ours[0]["backend"], "best_throughput": json.loads(best) if best else None}
        if best:
            low, mid, high = _gmeans(by_opts[best])
            rec[task].update(items_per_s=round(mid, 1), items_per_s_range=[round(low, 1), round(high, 1)])
        else:
            rec[task]["reason"] = why
        with_mem = {k: rs for k, rs in by_opts.items() if all(r.get("gpu_gib") for r in rs)}
        if with_mem:
            eff, _ = _choose(with_mem, per_gib=True)
            rec[task]["best_per_gib"] = json.loads(eff) if eff else None
            if eff:
                rec[task]["items_per_s_per_gib"] = round(_gmeans(with_mem[eff], per_gib=True)[1], 1)
    return rec


def format_table(rows: Sequence[dict]) -> str:
    head = (
        f"{'task':7} {'backend':28} {'options':52} {'n':>7} {'items/s':>9} {'spread':>7} {'tok/s':>10} "
        f"{'%ceil':>6} {'GPU GiB':>8} {'RSS GiB':>8} {'start s':>7} {'GPU%':>5}  busiest CPU %"
    )
    lines = [head, "-" * len(head)]
    for r in rows:

        def f(key: str, fmt: str, r: dict = r) -> str:
            v = r.get(key)
            return format(v, fmt) if isinstance(v, int | float) else "-"

        opts = ",".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
        lines.append(
            f"{r['task']:7} {r.get('workload', '-')[:12]:12} {r['backend'][:28]:28} {opts[:44]:44} "
            f"{r['n']:>7} {f('items_per_s', '9.0f')} {f('spread_pct', '6.1f')}% "
            f"{f('tokens_per_s', '10.0f')} {f('pct_bf16_ceiling', '6.1f')} {f('gpu_gib', '8.1f')} "
            f"{f('rss_gib', '8.2f')} {f('startup_s', '7.1f')} {f('gpu_util', '5.0f')}  "
            f"{' '.join(r.get('cpu_top') or [])}"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict], path: str) -> str | None:
    """Bar chart of items/s per setting (PNG); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in rows if "items_per_s" in r]  # settings that failed to start have none
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    labels = [
        f"{r['task']} {r['backend']} " + ",".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
        for r in rows
    ]
    ax.barh(range(len(rows)), [r["items_per_s"] for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("items/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="qwen3-rag bench", description=__doc__.split("\n")[0],
                                         allow_abbrev=False)
    p.add_argument("--model", default="random:0.6B", help="embedding model id/path or random:SIZE")
    p.add_argument("--reranker-model", default="random:0.6B", help="reranker model id/path or random:SIZE")
    p.add_argument("--backend", default="auto")
    p.add_argument(
        "--workload",
        action="append",
        default=None,
        help="articles | tokens:N | grid:QxD (repeatable; default: articles, tokens:300, grid:50x400)",
    )
    p.add_argument("-n", type=int, default=20000, help="documents per embedding workload")
    p.add_argument(
        "--sweep",
        default=None,
        help='engine options to sweep, e.g. "max_num_seqs=256,1024;max_num_batched_tokens=65536"',
    )
    p.add_argument("--option", action="append", default=[], help="fixed engine option KEY=VALUE")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per setting and workload, after a warm-up (the spread needs 2 or more)")
    p.add_argument("--baselines", action="store_true", help="also run the baselines")
    p.add_argument("--out", default="bench-out", help="folder for results.json and plots")
    p.add_argument("--workdir", default=None, help="where random checkpoints are written")
    p.add_argument(
        "--apply", default=None, metavar="PATH",
        help="write the recommended settings, model and backend into this config file (comments kept)"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON (progress on stderr)")
    return p


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``qwen3-rag bench`` subcommand's options."""
    build_parser(parser)


def build_workloads(args: argparse.Namespace, workdir: str) -> tuple[Any, Any, dict[str, list[str]],
                                                                    dict[str, list[tuple[str, str]]]]:
    """``(embedding model, reranker model, embedding workloads, reranking workloads)`` of ``args``
    (a model is resolved only when a workload needs it)."""
    embed_wl: dict[str, list[str]] = {}
    rerank_wl: dict[str, list[tuple[str, str]]] = {}
    emb_model = rr_model = None
    for wl in args.workload or ["articles", "tokens:300", "grid:50x400"]:
        wl = "articles" if wl == "seed" else wl  # the name it had first
        if wl.startswith("grid:"):
            rr_model = rr_model or resolve_model(args.reranker_model, "reranker", workdir)
            spec = wl[5:].lower().split(":")
            q, d = (int(x) for x in spec[0].split("x"))
            doc_tokens = int(spec[1]) if len(spec) > 1 else 55
            docs = token_docs(d, doc_tokens, _tokenizer(rr_model))
            queries = [f"question {i} about {TOPICS[i % len(TOPICS)]}?" for i in range(q)]
            rerank_wl[wl] = [(qq, dd) for qq in queries for dd in docs]
        else:
            emb_model = emb_model or resolve_model(args.model, "embedding", workdir)
            if wl == "articles":
                embed_wl[wl] = article_docs(args.n)
            elif wl.startswith("tokens:"):
                n = max(1, args.n // max(1, int(wl.split(":")[1]) // 50))
                embed_wl[wl] = token_docs(n, int(wl.split(":")[1]), _tokenizer(emb_model))
            else:
                raise SystemExit(f"unknown workload {wl!r}")
    return emb_model, rr_model, embed_wl, rerank_wl


def environment() -> dict[str, Any]:
    """Python, machine, library versions and GPU of this run (for results.json)."""
    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.node()}
    for mod in ("torch", "vllm", "transformers"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        import torch

        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
            env["gpu_count"] = torch.cuda.device_count()
    except Exception:
        pass
    return env


def run(args: argparse.Namespace) -> int:
    """The ``qwen3-rag bench`` subcommand: sweep, table, results.json, plot, ``--apply``."""
    from qwen3_rag.engine.options import check_names

    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    workdir = args.workdir or os.path.join(tempfile.gettempdir(), "qwen3-rag-bench")
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    fixed = dict(parse_option(o) for o in args.option)
    sweep = parse_sweep(args.sweep)
    check_names({*fixed, *(k for opts in sweep for k in opts)})  # misspelt: one error, not per setting
    report = sys.stdout
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        rows, rec = _sweep(args, workdir, fixed, sweep)
        for task, spec in (("embed", args.model), ("rerank", args.reranker_model)):
            if task in rec:  # a random checkpoint stands in for the real model: not written
                rec[task]["model"] = None if spec.startswith("random:") else spec
        result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, "env": environment(),
                  "rows": rows, "recommendation": rec}
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(result, f, indent=2, default=str)
        plot(rows, os.path.join(args.out, "throughput.png"))
        if args.apply:
            _apply(args.apply, rec)
    if args.json:
        report.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def _sweep(args: argparse.Namespace, workdir: str, fixed: dict[str, Any], sweep: list[dict[str, Any]]
           ) -> tuple[list[dict], dict[str, Any]]:
    """Every setting of the sweep (and the baselines) timed, the table printed; rows and recommendation."""
    emb_model, rr_model, embed_wl, rerank_wl = build_workloads(args, workdir)
    rows: list[dict] = []
    for opts in sweep:
        if embed_wl:
            rows += bench_embed(emb_model, args.backend, embed_wl, {**fixed, **opts}, args.repeats)
        if rerank_wl:
            rows += bench_rerank(rr_model, args.backend, rerank_wl, {**fixed, **opts}, args.repeats)
    if args.baselines:
        for name, texts in embed_wl.items():
            rows.append({**baseline_sentence_transformers(emb_model, texts), "workload": name})
        for name, pairs in rerank_wl.items():
            rows.append({**baseline_generate_logprobs(rr_model, pairs), "workload": name})
    print()
    print(format_table(rows))
    rec = recommend(rows)
    print("\nrecommendation:", json.dumps(rec, indent=2))
    return rows, rec


def _apply(path: str, rec: dict[str, Any]) -> None:
    """``--apply``: the recommendation into the config file, or why nothing was written."""
    from qwen3_rag.config import write_recommendation

    if not any((r or {}).get("best_throughput") for r in rec.values()):
        reasons = "; ".join(f"{t}: {r.get('reason')}" for t, r in rec.items() if r.get("reason"))
        print(f"nothing written to {path}: no setting beat the others ({reasons or 'nothing measured'})")
        return
    write_recommendation(path, rec)
    print(f"wrote recommended settings to {path}")


def parse_option(s: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)`` (the value as :func:`parse_value` reads it).

    Example:
        >>> parse_option("max_num_seqs = 256")
        ('max_num_seqs', 256)
    """
    k, v = s.split("=", 1)
    return k.strip(), parse_value(v)


def _tokenizer(model: str) -> Any:
    from qwen3_rag.tokenizer import load_tokenizer

    return load_tokenizer(model)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
