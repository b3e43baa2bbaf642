# Device run 36 (session 10, one H200): where a vLLM worker's imports go (`-X importtime`, the
# 25 slowest modules), then the GPU tests (default: the tiny checkpoints' fast-path and pool
# tests; the pool's embedder workers fork from a fork server), with stacks if past LIMIT s.
# Usage: [LIMIT=400] [PROFILE=0] bash benchmarks/device/run36.sh [pytest args...]
source benchmarks/device/common.sh
log "start run36"
leftovers
if [ "${PROFILE:-1}" = 1 ]; then
python3 -X importtime -c "from qwen3_rag.engine import get_engine; from qwen3_rag.engine.vllm import vllm_classes; vllm_classes()" \
  2> "$OUT/importtime.txt"
python3 - "$OUT/importtime.txt" <<'PY' | tee -a "$LOG"
import sys

rows = []
for line in open(sys.argv[1]):
    parts = line.split("|")
    if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
        rows.append((int(parts[1]), parts[2].rstrip()))
print(f"{len(rows)} modules; the 25 slowest, cumulative (a module's time includes what it imports):")
for cum, name in sorted(rows, reverse=True)[:25]:
    print(f"{cum / 1e6:8.2f} s  {name}")
PY
fi
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(tests/test_gpu.py -k "tiny and (fast_path or pool)")
gpu_tests "${LIMIT:-400}" "${ARGS[@]}"
leftovers
log "done run36"
