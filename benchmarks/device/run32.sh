# Device run 32 (session 9): the exit-order fix (run 30 caught `qwen3-rag serve` after SIGTERM in
# multiprocessing's exit hook, joining a vLLM engine core nobody had told to stop) on a serve
# stop, then the GPU test that never finished in session 8 (stacks if it runs past 300 s).
# Usage: bash benchmarks/device/run32.sh [pytest node ids...]
source benchmarks/device/common.sh
RUN=run32 bash benchmarks/device/run30.sh
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=("tests/test_gpu.py::test_vllm_pool_matches_one_engine[tiny]")
log "gpu tests: ${TESTS[*]}"
python3 -m pytest -m gpu -q -s -p no:cacheprovider "${TESTS[@]}" > "$OUT/pytest.log" 2>&1 &
PYT=$!
for _ in $(seq 300); do kill -0 $PYT 2>/dev/null || break; sleep 1; done
if kill -0 $PYT 2>/dev/null; then
  log "pytest still running after 300 s: stacks in stacks-pytest.txt"
  for p in $PYT $(pgrep -P $PYT); do py-spy dump --pid $p >> "$OUT/stacks-pytest.txt" 2>&1; done
  kill -9 $PYT
fi
wait $PYT; log "pytest rc $?"
grep -vE "^\s*$" "$OUT/pytest.log" | grep -E "passed|failed|Error|assert|cos|Δ|start-up|PASS|FAIL" | cut -c1-300 | tail -20 | tee -a "$LOG"
leftovers
log "done run32"
