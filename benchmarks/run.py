"""One entry point for every workload measured in docs/performance.md.

    python benchmarks/run.py --list                      # the workloads, what each needs
    python benchmarks/run.py WORKLOAD [options]          # run one; results under --out
    python benchmarks/run.py WORKLOAD --dry-run          # print the commands, run nothing

Each workload is the exact set of commands behind one table of docs/performance.md: engine
sweeps through ``qwen3-rag bench`` (``python -m qwen3_rag.bench``), end-to-end runs of
``qwen3-rag index`` and ``qwen3-rag serve`` through ``gpu_e2e.py``, single-call latency through
``latency_probe.py``, and the CPU-side Faiss scripts. Models are random-weight checkpoints of the
real shapes (``--model random:0.6B``, the default), written once under ``/tmp/qwen3-rag-bench``.

The embedding workloads can also run an anchor, the same texts through a plain tool:
``--anchor plain-vllm`` (``vllm.LLM(model, runner="pooling").embed(texts)``) or
``--anchor sentence-transformers`` (``anchors.py``).

Each command's output goes to the terminal and to ``OUT/run.log``; result files (``*.json``)
go to ``OUT``, by default ``bench-results/WORKLOAD``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: ``qwen3-rag bench``'s id of the short-article workload (~44 tokens + EOS per document)
ARTICLES = "articles"

#: the engine pool settings of the indexing figures (one H200, four workers built at once)
INDEX_CONFIG = """[embedding]
engines_per_gpu = 4
enable_prefix_caching = false
kv_cache_memory_bytes = 8000000000
max_num_batched_tokens = 65536
max_num_seqs = 2048
"""
NO_FAST_PATH_CONFIG = "[embedding]\nfast_path_tokens = 0\n[reranker]\nfast_path_tokens = 0\n"

#: KV cache per worker for N workers on one 141 GiB GPU (what the embedding figures used)
KV_CACHE_BYTES = {4: 8_000_000_000, 6: 5_000_000_000, 8: 4_000_000_000}


@dataclass
class Step:
    """One command of a workload, or a file it writes first (``write``: path -> text)."""

    what: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    write: tuple[Path, str] | None = None


@dataclass
class Workload:
    """A named workload: what it measures, what it needs, and how its steps are built."""

    name: str
    what: str
    needs: str
    steps: Callable[[argparse.Namespace], list[Step]]
    options: Callable[[argparse.ArgumentParser], None] = lambda p: None


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def bench(args: argparse.Namespace, *options: str, repeats: int = 1) -> list[str]:
    """A ``qwen3-rag bench`` command on the vLLM backend, results in ``OUT/NAME``."""
    return python("-m", "qwen3_rag.bench", "--backend", "vllm", "--model", args.model,
                  "--reranker-model", args.model, "--repeats", str(repeats), *options)


def out(args: argparse.Namespace, name: str) -> str:
    return str(Path(args.out) / name)


def anchor_steps(args: argparse.Namespace, workload: str, n: int) -> list[Step]:
    """The ``--anchor`` of an embedding workload: the same texts through a plain tool."""
    if not args.anchor:
        return []
    argv = python(str(HERE / "anchors.py"), args.anchor, "--workload", workload, "-n", str(n),
                  "--model", args.model, "--out", out(args, f"anchor-{args.anchor}.json"))
    return [Step(f"anchor: {args.anchor}", argv)]


# ---------------------------------------------------------------- embedding and reranking
def embed_articles(args: argparse.Namespace) -> list[Step]:
    steps = []
    for workers in (int(w) for w in args.workers.split(",")):
        kv = KV_CACHE_BYTES.get(workers, 32_000_000_000 // workers)
        steps.append(Step(f"{workers} workers", bench(
            args, "--workload", ARTICLES, "-n", str(args.n), "--option", "enable_prefix_caching=false",
            "--option", f"kv_cache_memory_bytes={kv}", "--sweep", f"engines_per_gpu={workers}",
            "--out", out(args, f"workers-{workers}"))))
    return steps + anchor_steps(args, ARTICLES, args.n)


def embed_300(args: argparse.Namespace) -> list[Step]:
    step = Step("4 workers, two step sizes", bench(
        args, "--workload", "tokens:300", "-n", str(args.n), "--option", "enable_prefix_caching=false",
        "--option", "kv_cache_memory_bytes=8000000000", "--option", "engines_per_gpu=4",
        "--sweep", "max_num_batched_tokens=32768,65536", "--out", out(args, "tokens-300")))
    return [step, *anchor_steps(args, "tokens:300", args.n // 6)]  # bench: n / (300 / 50) docs


def embed_engine_core(args: argparse.Namespace) -> list[Step]:
    common = ("--workload", ARTICLES, "-n", str(args.n), "--option", "enable_prefix_caching=false")
    return [
        Step("1 engine, in-process and spawned engine core", bench(
            args, *common, "--sweep", "engines_per_gpu=1;multiprocessing=off,spawn",
            "--out", out(args, "one-engine"))),
        Step("4 pool workers", bench(
            args, *common, "--option", "kv_cache_memory_bytes=8000000000",
            "--sweep", "engines_per_gpu=4;multiprocessing=off", "--out", out(args, "four-workers"))),
    ]


def embed_anchor(args: argparse.Namespace) -> list[Step]:
    return [Step("1, 2 and 4 engines, and sentence-transformers", bench(
        args, "--workload", ARTICLES, "--workload", "tokens:300", "-n", str(args.n),
        "--option", "max_num_seqs=1024", "--option", "max_num_batched_tokens=32768",
        "--sweep", "engines_per_gpu=1,2,4", "--baselines", "--out", out(args, "engines"), repeats=2))]


def rerank(args: argparse.Namespace) -> list[Step]:
    return [Step("1 and 4 engines", bench(
        args, "--workload", "grid:50x400", "--sweep", "engines_per_gpu=1,4", "--out", out(args, "grid")))]


def data_parallel(args: argparse.Namespace) -> list[Step]:
    return [Step("4 GPUs, then 1", bench(
        args, "--workload", ARTICLES, "-n", str(args.n), "--option", "engines_per_gpu=4",
        "--option", "kv_cache_memory_bytes=8000000000", "--option", "enable_prefix_caching=false",
        "--sweep", "data_parallel_size=4,1", "--out", out(args, "data-parallel")))]


# ---------------------------------------------------------------- end to end
def e2e(args: argparse.Namespace, *options: str) -> list[str]:
    return python(str(HERE / "gpu_e2e.py"), "--out", args.out, "--size", args.model.split(":", 1)[-1],
                  *options)


#: the packages whose sources an engine process imports by the thousand
HEAVY_PACKAGES = ("torch", "transformers", "vllm", "sympy", "triton", "numpy")


def site_folders() -> list[str]:
    """The folders holding torch, transformers, vLLM and the rest (found, not imported)."""
    folders: list[str] = []
    for name in HEAVY_PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = os.path.dirname(location)
            if folder not in folders:
                folders.append(folder)
    return folders


def index(args: argparse.Namespace) -> list[Step]:
    config = Path(args.out) / "index.toml"
    steps = [Step("engine pool settings", write=(config, INDEX_CONFIG))]
    envs = ["--index-env", f"QWEN3_RAG_CONFIG={config}"]
    if args.bytecode:  # what `pip install` leaves: bytecode for every site, here in a cache folder
        cache = str(Path(args.out) / "pycache")
        steps.append(Step("bytecode for every site folder",
                          python("-m", "compileall", "-q", "-j", "0", *site_folders()),
                          env={"PYTHONPYCACHEPREFIX": cache}))
        envs += ["--index-env", f"PYTHONPYCACHEPREFIX={cache}"]
    if args.warmup_docs:
        steps.append(Step(f"warm-up: {args.warmup_docs} documents (fills vLLM's compile cache)", e2e(
            args, "--n", str(args.warmup_docs), "--step", "index", *envs, "--tag", "warmup")))
    for i in range(1, args.repeats + 1):
        steps.append(Step(f"{args.n} documents, pass {i} of {args.repeats}", e2e(
            args, "--n", str(args.n), "--step", "index", *envs, "--tag", f"pass-{i}")))
    return steps


def serve(args: argparse.Namespace) -> list[Step]:
    steps, options = [], ["--n", str(args.n), "--step", "serve", "--queries", str(args.queries)]
    if args.synthetic_store:
        options += ["--synthetic-store", "--reuse-store"]
    if args.no_fast_path:
        config = Path(args.out) / "no-fast-path.toml"
        steps.append(Step("no fast path", write=(config, NO_FAST_PATH_CONFIG)))
        options += ["--serve-env", f"QWEN3_RAG_CONFIG={config}", "--tag", "no-fast-path"]
    return [*steps, Step("qwen3-rag serve: concurrency 1, then 32", e2e(args, *options))]


def serve_load(args: argparse.Namespace) -> list[Step]:
    argv = python(str(HERE / "serve_load.py"), "--n", str(args.n), "--seconds", str(args.seconds),
                  "--out", out(args, "serve-load"), "--reuse-store")
    if args.anchor:
        argv.append("--anchor")
    return [Step("qwen3-rag serve (and the anchor) at concurrency 1 to 128", argv)]


# ---------------------------------------------------------------- latency and the CPU side
def probe(args: argparse.Namespace, name: str, *options: str) -> list[str]:
    return python(str(HERE / "latency_probe.py"), "--model-size", args.model.split(":", 1)[-1],
                  "--n", "200", "--out", out(args, f"{name}.json"), *options)


def latency_vllm(args: argparse.Namespace) -> list[Step]:
    return [
        Step("engine cores spawned", probe(args, "spawned", "--kind", "both", "--same")),
        Step("embedder in-process", probe(args, "in-process-embedding", "--kind", "embedding", "--same",
                                          "--option", "multiprocessing=off", "--torch-profile")),
        Step("reranker in-process", probe(args, "in-process-reranker", "--kind", "reranker", "--same",
                                          "--option", "multiprocessing=off", "--torch-profile")),
    ]


def latency_fast_path(args: argparse.Namespace) -> list[Step]:
    small = ("--kind", "both", "--small-only", "--backend", "hf")
    return [Step("eager layers", probe(args, "eager", *small)),
            Step("compiled layers", probe(args, "compiled", *small, "--option", "torch_compile=true"))]


def faiss_blas(args: argparse.Namespace) -> list[Step]:
    return [Step("OpenBLAS as loaded, and with the CPU's kernels", python(str(HERE / "faiss_blas.py")))]


def faiss_recall(args: argparse.Namespace) -> list[Step]:
    return [Step("every kind at its defaults", python(str(HERE / "faiss_recall.py"), "--n", str(args.n)))]


def ivf_recall(args: argparse.Namespace) -> list[Step]:
    argv = python(str(HERE / "faiss_recall.py"), "--n", str(args.n), "--kinds", "ivf,ivf-sq8")
    return [Step("two-level k-means (the default)", argv),
            Step("one k-means", [*argv, "--two-level-min-nlist", "1000000"])]


def lexical(args: argparse.Namespace) -> list[Step]:
    argv = python(str(HERE / "lexical.py"), "--n", str(args.n), "--index", "auto")
    return [Step("store build without and with the lexical index; dense, lexical, hybrid latency", argv)]


def score_noise(args: argparse.Namespace) -> list[Step]:
    argv = python(str(HERE / "score_noise.py"), "--size", "0.6B")
    return [Step("bf16 rounding against prompt changes", argv)]


# ---------------------------------------------------------------- the registry
def with_n(default: int) -> Callable[[argparse.ArgumentParser], None]:
    return lambda p: p.add_argument("-n", type=int, default=default, help=f"documents (default {default})")


def embed_options(default: int, workers: bool = False) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        with_n(default)(p)
        p.add_argument("--anchor", choices=["plain-vllm", "sentence-transformers"],
                       help="also embed the same texts the plain way")
        if workers:
            p.add_argument("--workers", default="4,6,8", help="pool workers per GPU to run (default 4,6,8)")
    return add


def index_options(p: argparse.ArgumentParser) -> None:
    with_n(1_000_000)(p)
    p.add_argument("--bytecode", action="store_true",
                   help="compile every site folder to bytecode first (into OUT/pycache), as pip leaves it")
    p.add_argument("--warmup-docs", type=int, default=20_000,
                   help="index this many documents first to fill vLLM's compile cache (0: none)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of the full size (default 1)")


def serve_options(p: argparse.ArgumentParser) -> None:
    with_n(1_000_000)(p)
    p.add_argument("--queries", type=int, default=300, help="queries at concurrency 1 (default 300)")
    p.add_argument("--synthetic-store", action="store_true",
                   help="serve a store of random unit vectors instead of the one `index` built")
    p.add_argument("--no-fast-path", action="store_true", help="fast_path_tokens = 0 for both models")


def serve_load_options(p: argparse.ArgumentParser) -> None:
    with_n(1_000_000)(p)
    p.add_argument("--seconds", type=float, default=15.0, help="load time per row (default 15)")
    p.add_argument("--anchor", action="store_true", help="also two `vllm serve` with Faiss in the client")


WORKLOADS = [
    Workload("embed-articles", "embedding throughput, short articles (~44 tokens), 4/6/8 pool workers",
             "1 GPU, vLLM", embed_articles, embed_options(100_000, workers=True)),
    Workload("embed-300", "embedding throughput, 300-token documents, two scheduler step sizes",
             "1 GPU, vLLM", embed_300, embed_options(60_000)),
    Workload("embed-engine-core", "one engine with its engine core in-process or spawned; four workers",
             "1 GPU, vLLM", embed_engine_core, with_n(50_000)),
    Workload("embed-anchor", "1, 2 and 4 engines against sentence-transformers (short articles, 300 tokens)",
             "1 GPU, vLLM, sentence-transformers", embed_anchor, with_n(50_000)),
    Workload("rerank", "reranking throughput, 50 queries x 400 documents, 1 and 4 engines",
             "1 GPU, vLLM", rerank),
    Workload("data-parallel", "embedding on 4 GPUs against 1 (short articles)", "4 GPUs, vLLM",
             data_parallel, with_n(1_200_000)),
    Workload("index", "qwen3-rag index of 1M short articles end to end", "1 GPU, vLLM, faiss",
             index, index_options),
    Workload("serve", "qwen3-rag serve: /search latency at concurrency 1, throughput at 32",
             "1 GPU, vLLM, faiss, the serve extra", serve, serve_options),
    Workload("serve-load", "qwen3-rag serve under concurrent load (search, embeddings, rerank), anchor",
             "1 GPU, vLLM, faiss, the serve extra", serve_load, serve_load_options),
    Workload("latency-vllm", "single-call latency of vLLM engines, spawned and in-process", "1 GPU, vLLM",
             latency_vllm),
    Workload("latency-fast-path", "single-call latency of the CUDA-graph path, eager and compiled layers",
             "1 GPU", latency_fast_path),
    Workload("faiss-blas", "IVF list assignment with faiss-cpu's OpenBLAS kernels", "CPU, faiss", faiss_blas),
    Workload("faiss-recall", "recall@10 of every index kind at its defaults", "CPU, faiss",
             faiss_recall, with_n(100_000)),
    Workload("ivf-recall", "IVF build time and recall, two-level against one k-means", "CPU, faiss",
             ivf_recall, with_n(300_000)),
    Workload("lexical", "the lexical index's build cost and size; dense, lexical and hybrid search latency",
             "CPU, faiss", lexical, with_n(1_000_000)),
    Workload("score-noise", "how far bf16 moves reranker scores, against prompt changes", "CPU",
             score_noise),
]
BY_NAME = {w.name: w for w in WORKLOADS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0],
                                     epilog="python benchmarks/run.py --list: the workloads")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    sub = parser.add_subparsers(dest="workload", metavar="WORKLOAD")
    for w in WORKLOADS:
        p = sub.add_parser(w.name, help=w.what, description=f"{w.what} (needs: {w.needs})")
        p.add_argument("--model", default="random:0.6B", help="random:SIZE (default random:0.6B)")
        p.add_argument("--out", help="result folder (default bench-results/WORKLOAD)")
        p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
        w.options(p)
    return parser


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This checkout's ``src`` first on the path (a checkout need not be installed)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true", "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return env


def show(step: Step) -> str:
    if step.write:
        path, text = step.write
        return f"# {step.what}: write {path}\n" + "".join(f"#   {line}\n" for line in text.splitlines())
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env.items())
    return f"# {step.what}\n{env + ' ' if env else ''}{shlex.join(step.argv)}\n"


def execute(steps: list[Step], log_path: Path) -> int:
    """Run the steps in order, each command's output to the terminal and the log; stop at a failure."""
    with open(log_path, "a", encoding="utf-8") as log:
        for step in steps:
            log.write(f"\n[{time.strftime('%Y-%m-%d %H:%M:%S')}] {show(step)}")
            log.flush()
            if step.write:
                step.write[0].write_text(step.write[1], encoding="utf-8")
                continue
            print(show(step), end="", flush=True)
            proc = subprocess.Popen(step.argv, env=child_env(step.env), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd=ROOT)
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            if proc.wait() != 0:
                print(f"{step.what}: exit status {proc.returncode}", file=sys.stderr)
                return proc.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list or not args.workload:
        for w in WORKLOADS:
            print(f"{w.name:18} {w.what}  [{w.needs}]")
        return 0
    args.out = str(Path(args.out or Path("bench-results") / args.workload).resolve())
    steps = BY_NAME[args.workload].steps(args)
    if args.dry_run:
        print("".join(show(s) for s in steps), end="")
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return execute(steps, Path(args.out) / "run.log")


if __name__ == "__main__":
    sys.exit(main())
