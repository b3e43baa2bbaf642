# Device run 29 (prepared in session 8, not run yet): (1) what the pool workers' ~20 s of
# imports cost alone and four at once (the part of the 1M index's start-up left to cut);
# (2) how long vLLM engines take to close and exit, with py-spy stacks when it lingers (the
# slow stops of run 28: a serve not stopping within 60 s of SIGTERM, a reranker pool's close).
source benchmarks/device/common.sh
log "start run29"
leftovers
IMPORTS='import time; t = time.perf_counter(); import vllm; a = time.perf_counter(); from vllm import LLM; from vllm.config import PoolerConfig; b = time.perf_counter(); import transformers, faiss; c = time.perf_counter(); print(f"import vllm {a - t:.2f} s, from vllm import LLM {b - a:.2f} s, transformers+faiss {c - b:.2f} s")'
log "imports, one process"
python3 -c "$IMPORTS" 2>&1 | grep import | tee -a "$LOG"
python3 -c "$IMPORTS" 2>&1 | grep import | tee -a "$LOG"
log "imports, four processes at once"
for i in 1 2 3 4; do python3 -c "$IMPORTS" > /tmp/imp$i.log 2>&1 & done; wait
grep -h import /tmp/imp?.log | tee -a "$LOG"
log "engine close"
timeout 500 python3 benchmarks/engine_close.py --model random:0.6B --out "$OUT/close" --timeout 150 \
  --case reranker:off --case embedding:off --case reranker:pool 2>&1 | grep --line-buffered '^{' | tee -a "$LOG"
ls "$OUT/close" | tee -a "$LOG"
leftovers
log "done run29"
