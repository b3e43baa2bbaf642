"""How long an engine takes to close, and the process to exit after it; stack dumps if it hangs.

Built for a slow stop seen on an H200 (docs/benchmarks.md, session 8): ``qwen3-rag serve`` did
not exit within 60 s of SIGTERM, and a test closing a pool of vLLM reranker workers ran on for
~55 s. Each case runs in a fresh subprocess: build the engine, run one batch, ``close()`` it,
leave. A watchdog thread takes ``py-spy dump`` of the process and its children when ``close()``
or the exit passes ``--dump-after`` seconds. Prints one JSON line per case::

    python benchmarks/engine_close.py --model random:0.6B --out OUT \\
        --case reranker:off --case embedding:off --case reranker:spawn --case reranker:pool

A case is ``KIND:MODE`` with MODE ``off`` (engine core in-process), ``spawn`` (its own process)
or ``pool`` (two pool workers with in-process engine cores). ``--backend hf`` runs on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from qwen3_rag.bench import descendants, resolve_model


def dump_stacks(pid: int, out: str, tag: str) -> None:
    """``py-spy dump`` of ``pid`` and its descendants into ``out/stacks-TAG.txt`` (if py-spy is there)."""
    spy = shutil.which("py-spy")
    with open(os.path.join(out, f"stacks-{tag}.txt"), "a") as f:
        for p in [pid, *descendants(pid)]:
            f.write(f"==== pid {p} at {time.strftime('%H:%M:%S')}\n")
            f.flush()
            if spy is None:
                f.write("(py-spy not found)\n")
                continue
            subprocess.run([spy, "dump", "--pid", str(p)], stdout=f, stderr=subprocess.STDOUT, timeout=60,
                           check=False)


def child(kind: str, mode: str, model: str, backend: str, out: str, dump_after: float) -> None:
    """One case, in this process: build, run a batch, close (watched), then exit normally."""
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    opts: dict = {}
    if backend == "vllm":
        opts = {"gpu_memory_utilization": 0.3}
        if mode == "pool":
            opts.update(engines_per_gpu=2, kv_cache_memory_bytes=2_000_000_000)
        else:
            opts["multiprocessing"] = mode
    elif mode == "pool":
        opts["engines_per_gpu"] = 2
    t0 = time.perf_counter()
    texts = [f"Document {i}: about Paris and bananas " * (1 + i % 7) for i in range(256)]
    if kind == "embedding":
        model_obj = Qwen3Embedder(model, backend=backend, max_length=512, **opts)
        run = lambda: model_obj.embed_documents(texts)  # noqa: E731
    else:
        model_obj = Qwen3Reranker(model, backend=backend, max_length=512, **opts)
        run = lambda: model_obj.score("capital of France?", texts)  # noqa: E731
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    run()
    ran = time.perf_counter() - t1
    done = threading.Event()
    tag = f"{kind}-{mode}"

    def watch() -> None:
        if not done.wait(dump_after):
            dump_stacks(os.getpid(), out, tag + "-close")

    threading.Thread(target=watch, daemon=True).start()
    t2 = time.perf_counter()
    model_obj.engine.close()
    closed = time.perf_counter() - t2
    done.set()
    report = {"case": tag, "build_s": round(built, 2), "run_s": round(ran, 3), "close_s": round(closed, 2)}
    tmp = os.path.join(out, f".report-{tag}.json")
    with open(tmp, "w") as f:
        json.dump(report, f)
    os.replace(tmp, os.path.join(out, f"report-{tag}.json"))  # appears whole: the parent polls for it


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="random:0.6B", help="a checkpoint, or random:SIZE (per kind)")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--case", action="append", default=[], help="KIND:MODE (repeatable)")
    ap.add_argument("--out", default="engine-close-out")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-bench")
    ap.add_argument("--dump-after", type=float, default=15.0, help="seconds before stacks are dumped")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds a case may take in all")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        kind, mode, model = args.child.split(":", 2)
        child(kind, mode, model, args.backend, args.out, args.dump_after)
        return 0
    os.makedirs(args.workdir, exist_ok=True)
    for case in args.case or ["reranker:off", "embedding:off"]:
        kind, mode = case.split(":")
        model = resolve_model(args.model, kind, args.workdir)
        cmd = [sys.executable, __file__, "--backend", args.backend, "--out", args.out,
               "--dump-after", str(args.dump_after), "--child", f"{kind}:{mode}:{model}"]
        done = os.path.join(args.out, f"report-{kind}-{mode}.json")
        with contextlib.suppress(FileNotFoundError):
            os.remove(done)
        t0 = time.perf_counter()
        with open(os.path.join(args.out, f"{kind}-{mode}.log"), "w") as log:  # vLLM logs to stdout
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        report: dict = {}
        while time.perf_counter() - t0 < args.timeout and proc.poll() is None and not os.path.exists(done):
            time.sleep(0.2)
        with contextlib.suppress(FileNotFoundError):
            report.update(json.load(open(done)))
        closed_at = time.perf_counter()
        try:  # the exit after close(): dump stacks if it lingers
            proc.wait(args.dump_after)
        except subprocess.TimeoutExpired:
            dump_stacks(proc.pid, args.out, f"{kind}-{mode}-exit")
            try:
                proc.wait(max(1.0, args.timeout - (time.perf_counter() - t0)))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                report["killed"] = True
        report.update(case=case, rc=proc.returncode, total_s=round(time.perf_counter() - t0, 1),
                      exit_after_close_s=round(time.perf_counter() - closed_at, 2))
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
