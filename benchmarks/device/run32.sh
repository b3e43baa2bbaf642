# Device run 32 (session 9): the exit-order fix (run 30 caught `qwen3-rag serve` after SIGTERM in
# multiprocessing's exit hook, joining a vLLM engine core nobody had told to stop) on a serve
# stop, then the GPU test that never finished in session 8 (stacks if it runs past 300 s).
# Usage: bash benchmarks/device/run32.sh [pytest node ids...]
source benchmarks/device/common.sh
RUN=run32 bash benchmarks/device/run30.sh
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=("tests/test_gpu.py::test_vllm_pool_matches_one_engine[tiny]")
gpu_tests 300 "${TESTS[@]}"
leftovers
log "done run32"
