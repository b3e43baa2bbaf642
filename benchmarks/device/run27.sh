# Device run 27 (session 8, one H200): the final build's `qwen3-rag index` of 1M documents with a
# warm compile cache, twice. New since run 24: pool workers format with vLLM's own tokenizer (no
# second load), the pool stops while the store is saved, workers run multiprocessing's exit
# hooks. A 20k-document index first fills vLLM's compile cache for this config (a fresh machine).
# Env: RUN (the tag of the results), INDEX_EXTRA (lines added to the [embedding] config).
source benchmarks/device/common.sh
log "start ${RUN:-run27}"
leftovers
printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\n' > /tmp/index.toml
[ -n "${INDEX_EXTRA:-}" ] && echo "$INDEX_EXTRA" >> /tmp/index.toml  # more [embedding] lines
cat /tmp/index.toml | tee -a "$LOG"
for tag in 20k:20000:130 1m-a:1000000:200 1m-b:1000000:200; do
  IFS=: read -r name n limit <<< "$tag"
  log "index $name ($n docs, limit $limit s)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-timeout $limit --tag ${RUN:-run27}-$name 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|leaked|Traceback" "$OUT/index-$name.log" | cut -c1-300 | tee -a "$LOG"
done
leftovers
log "done ${RUN:-run27}"
