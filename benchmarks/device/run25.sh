# Device run 25 (session 7): `qwen3-rag serve` with its defaults (compiled fast path) over the
# 1M-document store run 24 built on this machine (real vectors of the random 0.6B embedder):
# latency at concurrency 1 and throughput at concurrency 32.
source benchmarks/device/common.sh
log "start run25"
leftovers
timeout 540 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --queries 300 --tag run25 2>&1 \
  | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | grep --line-buffered -A14 '"c1"' | tee -a "$LOG"
grep -E "Traceback|Error" "$OUT/serverun25.log" | head | tee -a "$LOG"
leftovers
log "done run25"
