# Device run 24 (session 7, one H200): run 23 again after the Faiss OpenBLAS kernels (faiss-cpu's
# OpenBLAS 0.3.15 ran SSE3 kernels on unknown Intel CPUs) and the parent's lazy tokenizer; first
# the host's CPU and Faiss's GEMM pace, then a 64k-token step with CUDA graphs against the
# default step (both with a cold compile cache), then `qwen3-rag index` of 1M documents with the
# faster of the two (its compile cache now warm).
source benchmarks/device/common.sh
log "start run24"
leftovers
python3 benchmarks/faiss_blas.py 2>&1 | tee -a "$LOG"
BASE="--workload seed -n 100000 --option enable_prefix_caching=false --option kv_cache_memory_bytes=8000000000 --option engines_per_gpu=4"
export BENCH_TIMEOUT=110
bench base $BASE
bench step64k $BASE --option max_num_batched_tokens=65536 --option max_num_seqs=2048
python3 - <<'PY' | tee -a "$LOG"
import json, os
rate = {}
for name in ("base", "step64k"):
    try:
        rate[name] = json.load(open(f"{os.environ['OUT']}/{name}.json"))["rows"][0]["items_per_s"]
    except (OSError, KeyError, IndexError, ValueError):
        rate[name] = 0
lines = ["[embedding]", "engines_per_gpu = 4", "enable_prefix_caching = false", "kv_cache_memory_bytes = 8000000000"]
if rate["step64k"] > 1.02 * rate["base"]:
    lines += ["max_num_batched_tokens = 65536", "max_num_seqs = 2048"]
print("docs/s:", {k: round(v) for k, v in rate.items()})
open("/tmp/index.toml", "w").write("\n".join(lines) + "\n")
print(open("/tmp/index.toml").read())
PY
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
  --index-timeout 330 --tag run24 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" \
  | grep --line-buffered -E "index_seconds|phases|time  |Error|error" | cut -c1-400 | tee -a "$LOG"
grep -E "engine workers ready|took|takes|finished in" "$OUT/index.log" | grep -vE "Triton kernel JIT" | cut -c1-220 > "$OUT/index-timings.log"
leftovers
log "done run24"
