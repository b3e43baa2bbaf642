# Device run 26 (session 7, one H200): run 24's `qwen3-rag index` of 1M documents again after
# the workers' tokenizer loads alongside their engine build and the pool stops while the store is
# saved. A 20k-document index first fills vLLM's compile cache for this config (a fresh machine).
source benchmarks/device/common.sh
log "start run26"
leftovers
printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\n' > /tmp/index.toml
cat /tmp/index.toml | tee -a "$LOG"
for n in 20000 1000000; do
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-timeout 250 --tag run26-$n 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-300 | tee -a "$LOG"
  grep -E "engine workers ready|init engine|torch.compile took" "$OUT/index.log" | cut -c1-200 > "$OUT/index-timings-$n.log"
done
leftovers
log "done run26"
