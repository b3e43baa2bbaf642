# Device run 4 (2026-11-22): qwen3-rag index of 1M seed-style documents, then serve + latency.
source benchmarks/device/common.sh
log "start run4"
cat > /tmp/index.toml <<'TOML'
[embedding]
engines_per_gpu = 4
enable_prefix_caching = false
kv_cache_memory_bytes = 8000000000
TOML
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT/e2e" --index-env QWEN3_RAG_CONFIG=/tmp/index.toml 2>&1 \
  | grep -v "^\[transformers\]" | tail -60 | tee -a "$LOG"
log "done run4"
