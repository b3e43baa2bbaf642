# Device run 34 (prepared in session 9, not run yet): where a pool worker's 19-27 s of imports
# go (`python -X importtime` of what a vLLM worker imports before its engine: the 25 slowest
# modules, cumulative), then run 33's 1M index with 10 CUDA graph sizes instead of 51 (graph
# capture took 1-6 s per worker in runs 32-33); its 20k run fills the compile cache first.
source benchmarks/device/common.sh
log "start run34"
leftovers
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
INDEX_EXTRA='compilation_config = { cudagraph_capture_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] }' \
  RUN=run34 bash benchmarks/device/run27.sh
log "done run34"
