# Device run 31 (prepared in session 8, not run yet): does capturing fewer CUDA graphs shorten
# the 4 workers' start-up (51 piecewise graphs each, 3-5 s in run 27) without costing docs/s?
# Seed-style 100k documents, run 24's config; each variant cold, then warm.
source benchmarks/device/common.sh
log "start run31"
leftovers
BASE="--workload seed -n 100000 --option enable_prefix_caching=false --option kv_cache_memory_bytes=8000000000 --option engines_per_gpu=4 --option max_num_batched_tokens=65536 --option max_num_seqs=2048"
FEW='--option compilation_config={"cudagraph_capture_sizes":[1,2,4,8,16,32,64,128,256,512]}'
export BENCH_TIMEOUT=150
bench base-cold $BASE
bench few-cold $BASE $FEW
bench base $BASE
bench few $BASE $FEW
startup_table
grep -E "Graph capturing finished|init engine" "$OUT/full.log" | cut -c1-200 > "$OUT/vllm-timings.log"
leftovers
log "done run31"
