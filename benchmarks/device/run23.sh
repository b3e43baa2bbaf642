# Device run 23 (session 7): `qwen3-rag index` of 1M seed-style documents (two-level IVF training
# since session 6), with the engine settings run 22 found best on the same machine: no CUDA graphs
# if they cost < 3% throughput, a 64k-token step if it gains > 2%. Falls back to run 21's settings.
source benchmarks/device/common.sh
log "start run23"
leftovers
python3 - <<'PY' | tee -a "$LOG"
import glob, json
rate = {}
for f in glob.glob("/tmp/run22/*.json"):
    rows = [r for r in json.load(open(f))["rows"] if r.get("items_per_s")]
    if rows:
        rate[f.split("/")[-1][:-5]] = rows[0]["items_per_s"]
print("run 22 docs/s:", {k: round(v) for k, v in sorted(rate.items())})
base = max(rate.get("base", 0), rate.get("base-cold", 0))
nograph = max(rate.get("nograph", 0), rate.get("nograph-cold", 0))
lines = ["[embedding]", "engines_per_gpu = 4", "enable_prefix_caching = false",
         "kv_cache_memory_bytes = 8000000000"]
if base and nograph >= 0.97 * base:
    lines.append('compilation_config = { cudagraph_mode = "NONE" }')
    if rate.get("step64k", 0) > 1.02 * max(base, nograph):
        lines += ["max_num_batched_tokens = 65536", "max_num_seqs = 2048"]
open("/tmp/index.toml", "w").write("\n".join(lines) + "\n")
print(open("/tmp/index.toml").read())
PY
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
  --index-timeout 400 --tag run23 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
grep -E "engine workers ready|took|takes|finished in" "$OUT/index.log" | grep -vE "Triton kernel JIT" | cut -c1-220 > "$OUT/index-timings.log"
leftovers
log "done run23"
