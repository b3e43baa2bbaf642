# Device run 20 (session 6, one H200 with 16 cores): embedding throughput with 4, 6 and 8
# pool workers per GPU for seed-style documents, and the step size for 300-token documents
# (what the never-run run14.sh of session 4 planned, with shorter limits so it fits one call).
source benchmarks/device/common.sh
log "start run20"
leftovers
nproc | tee -a "$LOG"
NOPC="--option enable_prefix_caching=false"
BENCH_TIMEOUT=130 bench e4 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=8000000000 --sweep 'engines_per_gpu=4'
BENCH_TIMEOUT=130 bench e6 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=5000000000 --sweep 'engines_per_gpu=6'
BENCH_TIMEOUT=130 bench e8 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=4000000000 --sweep 'engines_per_gpu=8'
BENCH_TIMEOUT=150 bench t300 --workload tokens:300 -n 60000 $NOPC --option kv_cache_memory_bytes=8000000000 \
  --option engines_per_gpu=4 --sweep 'max_num_batched_tokens=32768,65536'
leftovers
log "done run20"
