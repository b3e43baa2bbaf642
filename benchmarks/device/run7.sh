# Device run 7 (retry of run 4 with the fail-fast pool) (2026-11-22): qwen3-rag index of 1M seed-style documents (run4.sh index), then
# serve + latency over that store (run4.sh serve, the next call while the machine is warm).
source benchmarks/device/common.sh
STEP=${1:-both}
log "start run4 $STEP"
cat > /tmp/index.toml <<'TOML'
[embedding]
engines_per_gpu = 4
enable_prefix_caching = false
TOML
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step "$STEP" --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
  --index-timeout 480 --queries 300 2>&1 | grep --line-buffered -v "^\[transformers\]" | tee -a "$LOG"
log "done run4 $STEP"
