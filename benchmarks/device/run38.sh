# Device runs 38 and 39 (session 11, one H200; at commits a1cbcba and e9a3409: the interim
# engine was reverted after them, so the "interim" variant no longer exists): `qwen3-rag index`
# of 1M documents with the pool's interim engine (`interim_backend = "hf"`: this process embeds with transformers on the GPU while the
# four vLLM workers import vLLM and build their engines, ~37-50 s in runs 24-33) against the same
# command without it, on one machine. A 20k index without the interim fills vLLM's compile cache
# first (with it, the interim would embed all 20k and the workers would stop before compiling).
# Env: RUNS (name:docs:limit:variant ..., variant "base" or "interim"), RUN (result tag prefix).
source benchmarks/device/common.sh
RUN=${RUN:-run38}
log "start $RUN"
leftovers
python3 -c "import sys; print(sys.version)" | tee -a "$LOG"
for tag in ${RUNS:-20k:20000:130:base 1m-a:1000000:200:interim 1m-b:1000000:200:base}; do
  IFS=: read -r name n limit variant <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\n' > /tmp/index.toml
  [ "$variant" = interim ] && echo 'interim_backend = "hf"' >> /tmp/index.toml
  log "index $name ($n docs, limit $limit s, $variant)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-timeout $limit --tag $RUN-$name 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|interim|leaked|Traceback|Error" "$OUT/index-$name.log" \
    | cut -c1-300 | tail -8 | tee -a "$LOG"
done
leftovers
log "done $RUN"
