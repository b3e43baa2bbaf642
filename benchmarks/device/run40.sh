# Device run 40 (session 11, one H200): `qwen3-rag index` of 1M documents with 10 CUDA graph
# sizes (1..512, powers of two) instead of vLLM's 51, in a staged site compiled to bytecode as
# `pip install` leaves one. Runs 38-39 logged 5-8 s of graph capture per worker, four at once;
# run 36 found ~2 s of each worker's imports compiling the staged sources (no .pyc; the device
# does not write any). A 20k index first fills the compile cache for this config. Compare the
# workers' `imports` laps and vLLM's "Graph capturing finished" lines with runs 38-39.
source benchmarks/device/common.sh
log "start run40"
leftovers
log "bytecode flags: $(python3 -c 'import sys, os; print(sys.flags.dont_write_bytecode, os.environ.get("PYTHONDONTWRITEBYTECODE"))')"
log "staged .pyc before: $(find /opt/vsite -name '*.pyc' | wc -l)"
/usr/bin/time -f "%e s" -o /tmp/t python3 -m compileall -q -j 16 /opt/vsite > /dev/null 2>&1
log "compileall /opt/vsite: $(cat /tmp/t); .pyc now: $(find /opt/vsite -name '*.pyc' | wc -l)"
for tag in 20k:20000:130 1m-a:1000000:180 1m-b:1000000:180; do
  IFS=: read -r name n limit <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\ncompilation_config = { cudagraph_capture_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] }\n' > /tmp/index.toml
  log "index $name ($n docs, limit $limit s)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-timeout $limit --tag run40-$name 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|Graph capturing finished|init engine|leaked|Traceback" \
    "$OUT/index-$name.log" | cut -c1-200 | tail -10 | tee -a "$LOG"
done
leftovers
log "done run40"
