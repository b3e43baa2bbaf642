# Device run 18 (session 5): qwen3-rag serve over 1M vectors with serve's defaults, now
# fast_path_compile=true (run 16: the same without the compile: p50 32.8, p99 51.4 ms).
source benchmarks/device/common.sh
log "start run18"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
[ -f .ccache/inductor-cache.tgz ] && tar xzf .ccache/inductor-cache.tgz -C / && log "inductor cache restored"
timeout 580 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --reuse-store \
  --queries 300 --tag fastc 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
grep -E "captured|Traceback|Error" "$OUT/servefastc.log" | head | tee -a "$LOG"
log "done run18"
