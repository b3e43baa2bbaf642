# Device run 19 (session 5): run 18 again on the same machine and store, with no leftover process
# (run 17's timed-out pytest may have left a vLLM engine core running during run 18: search took
# 8.7 ms there against 5.2 in run 16).
source benchmarks/device/common.sh
log "start run19"
leftovers
timeout 500 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --reuse-store \
  --queries 300 --tag fastc2 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" \
  | grep --line-buffered -A12 '"c1"' | tee -a "$LOG"
leftovers
log "done run19"
