# Device run 6 (2026-11-22): serve + latency over a 1M-vector store (random unit vectors).
source benchmarks/device/common.sh
log "start run6"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --queries 300 2>&1 \
  | grep --line-buffered -v "^\[transformers\]" | grep --line-buffered -v "INFO" | tee -a "$LOG"
log "done run6"
