# Device run 30 (prepared in session 8, not run yet): `qwen3-rag serve` (defaults: compiled
# fast path, in-process reranker) over a 20k-vector synthetic store, then SIGTERM: stop time,
# and py-spy stacks of the server and its children when it still runs after 15 s
# ($OUT/stacks-serve-stop.txt; run 28's server did not stop within 60 s).
source benchmarks/device/common.sh
log "start ${RUN:-run30}"
leftovers
timeout 400 python3 benchmarks/gpu_e2e.py --n 20000 --synthetic-store --out "$OUT" --step serve --queries 100 \
  --tag ${RUN:-run30} --serve-log-level info 2>&1 | tee "$OUT/serve-driver.log" \
  | grep --line-buffered -E '"(p50_ms|qps|serve_exit|serve_stop_s)"' | tee -a "$LOG"
tail -40 "$OUT/serve${RUN:-run30}.log" | cut -c1-250 > "$OUT/serve-tail.log"
leftovers
log "done ${RUN:-run30}"
