# Device run 22 (session 7, one H200): where the start-up of 4 pool workers goes, and whether
# CUDA graphs (useless for bulk embedding: steps of thousands of tokens run outside them) or a
# larger step pay for themselves. Seed-style 100k documents, 4 workers built at once.
# Each variant with its own compile hash runs twice (cold, then warm compile cache).
source benchmarks/device/common.sh
log "start run22"
leftovers
nproc | tee -a "$LOG"
BASE="--workload seed -n 100000 --option enable_prefix_caching=false --option kv_cache_memory_bytes=8000000000 --option engines_per_gpu=4"
NOGRAPH='--option compilation_config={"cudagraph_mode":"NONE"}'
export BENCH_TIMEOUT=110
bench base-cold $BASE
bench nograph-cold $BASE $NOGRAPH
bench base $BASE
bench nograph $BASE $NOGRAPH
bench eager $BASE --option enforce_eager=true
bench step64k $BASE $NOGRAPH --option max_num_batched_tokens=65536 --option max_num_seqs=2048
mkdir -p /tmp/run22 && cp "$OUT"/*.json /tmp/run22/ 2>/dev/null
# where the workers' start-up went (the bench JSON's startup_workers) and vLLM's own timings
startup_table
grep -E "took|takes|finished in|Compil|cache" "$OUT/full.log" | grep -vE "Triton kernel JIT" | cut -c1-220 > "$OUT/vllm-timings.log"
leftovers
log "done run22"
