# Device run 14 (session 4): embedding throughput on one H100 (the targets are on one
# H100; sessions 1-3 only had H200s): pool workers per GPU 4, 6, 8 for seed-style documents,
# and the step size for 300-token documents.
source benchmarks/device/common.sh
log "start run14"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
nproc | tee -a "$LOG"
NOPC="--option enable_prefix_caching=false"
BENCH_TIMEOUT=150 bench e4 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=8000000000 --sweep 'engines_per_gpu=4'
BENCH_TIMEOUT=150 bench e6 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=5000000000 --sweep 'engines_per_gpu=6'
BENCH_TIMEOUT=150 bench e8 --workload seed -n 100000 $NOPC --option kv_cache_memory_bytes=4000000000 --sweep 'engines_per_gpu=8'
BENCH_TIMEOUT=170 bench t300 --workload tokens:300 -n 60000 $NOPC --option kv_cache_memory_bytes=8000000000 \
  --option engines_per_gpu=4 --sweep 'max_num_batched_tokens=32768,65536'
log "done run14"
