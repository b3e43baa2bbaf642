# Device run 21 (session 6): `qwen3-rag index` of 1M seed-style documents, workers built at once
# (kv_cache_memory_bytes), engine cores in the workers; WORKERS per GPU from the environment
# (default 4), chosen from run 20. Replaces the never-run run11.sh (its latency half is covered by runs 17-19).
source benchmarks/device/common.sh
log "start run21"
leftovers
W=${WORKERS:-4}
KV=$(( 32000000000 / W ))
cat > /tmp/index.toml <<TOML
[embedding]
engines_per_gpu = $W
enable_prefix_caching = false
kv_cache_memory_bytes = $KV
TOML
cat /tmp/index.toml | tee -a "$LOG"
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
  --index-timeout 480 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
leftovers
log "done run21"
