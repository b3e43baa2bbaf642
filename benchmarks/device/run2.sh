# Device run 2 (2026-11-22): reranker 1 vs 4 engines; embedding with async scheduling, 2 and 6 engines.
source benchmarks/device/common.sh
log "start run2"
bench r14 --workload grid:50x400 --sweep 'engines_per_gpu=1,4'
bench easync --workload seed --workload tokens:300 -n 50000 --sweep 'engines_per_gpu=1;enable_prefix_caching=false;async_scheduling=true'
bench e2 --workload seed --workload tokens:300 -n 50000 --sweep 'engines_per_gpu=2;enable_prefix_caching=false'
bench e6 --workload seed --workload tokens:300 -n 50000 --option gpu_memory_utilization=0.6 --sweep "engines_per_gpu=6;enable_prefix_caching=false"
log "done"
