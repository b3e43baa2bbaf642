# Device run 28 (session 8, same machine right after run 27): `qwen3-rag serve` with its
# defaults (compiled fast path) over run 27's 1M-document store: latency at concurrency 1 and
# throughput at concurrency 32, after the GPU tests (vLLM's tokenizer at the token-id level, a
# vLLM pool against one engine, parity with float32 transformers).
source benchmarks/device/common.sh
log "start run28"
leftovers
log "gpu tests"
timeout 240 python3 -m pytest -m gpu tests/test_gpu.py -x -q -s -p no:cacheprovider 2>&1 \
  | tee "$OUT/pytest-gpu.log" | grep --line-buffered -E "PARITY|GRAPHS|FAST PATH|POOL|passed|failed|skipped|Error" | tee -a "$LOG"
leftovers
timeout 330 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --queries 300 --tag run28 2>&1 \
  | tee "$OUT/serve-driver.log" | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" \
  | grep --line-buffered -A14 '"c1"' | tee -a "$LOG"
grep -E "Traceback|Error" "$OUT/serverun28.log" | head | tee -a "$LOG"
leftovers
log "done run28"
