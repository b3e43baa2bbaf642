# Device run 3 (2026-11-22): the pool with tokenization in its workers, engines started together.
source benchmarks/device/common.sh
log "start run3"
KV="--option kv_cache_memory_bytes=8000000000 --option enable_prefix_caching=false"
bench e46 --workload seed --workload tokens:300 -n 50000 $KV --sweep 'engines_per_gpu=4,6'
bench e4t --workload tokens:300 -n 50000 $KV --sweep 'engines_per_gpu=4;max_num_batched_tokens=32768'
bench r4 --workload grid:50x400 --option kv_cache_memory_bytes=8000000000 --sweep 'engines_per_gpu=4'
log "done run3"
