# Device run 11 (prepared 2026-11-22, not run yet): what session 3 left unmeasured, in one call
# on a warm machine (~9 minutes): qwen3-rag index of 1M documents with the four workers built at
# once and their engine cores in-process, then single-request latency with fresh requests.
source benchmarks/device/common.sh
log "start run11"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
cat > /tmp/index.toml <<'TOML'
[embedding]
engines_per_gpu = 4
enable_prefix_caching = false
kv_cache_memory_bytes = 8000000000
TOML
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
  --index-timeout 420 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
timeout 150 python3 benchmarks/latency_probe.py --kind both --n 200 --out "$OUT/fresh.json" > /tmp/fresh.log 2>&1
grep -E "^(shape|format|embed|score)" /tmp/fresh.log | tee -a "$LOG"
log "done run11"
