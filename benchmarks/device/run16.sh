# Device run 16 (session 4): qwen3-rag serve over 1M vectors with the CUDA-graph fast path
# (run 13's fast-path half ran out of time during start-up).
source benchmarks/device/common.sh
log "start run16"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
timeout 570 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --reuse-store \
  --queries 300 --tag fast 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
grep -E "captured|Traceback|Error" "$OUT/servefast.log" | head | tee -a "$LOG"
log "done run16"
