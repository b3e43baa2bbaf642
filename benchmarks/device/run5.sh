# Device run 5 (2026-11-22, 4 x H200): data parallel, one GPU against four, same build, same day.
source benchmarks/device/common.sh
log "start run5"; nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$LOG"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
OPTS="--option engines_per_gpu=4 --option kv_cache_memory_bytes=8000000000 --option enable_prefix_caching=false"
BENCH_TIMEOUT=500 bench dp --workload seed -n 400000 $OPTS --sweep 'data_parallel_size=1,4'
log "done run5"
