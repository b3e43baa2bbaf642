# Device run 35 (session 10, one H200): `qwen3-rag index` of 1M documents with the pool's
# workers forked from a fork server that imported vLLM once (start_method = "forkserver")
# and 10 CUDA graph sizes instead of 51. The 20k run fills the compile cache for this config
# (and shows whether forked workers build engines at all: if not, the 1M runs go back to spawn).
source benchmarks/device/common.sh
log "start run35"
GRAPHS='compilation_config = { cudagraph_capture_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] }'
python3 -c "import sys; print(sys.version)" | tee -a "$LOG"
export INDEX_EXTRA="start_method = \"forkserver\"
$GRAPHS"
for tag in 20k:20000:150 1m-a:1000000:200 1m-b:1000000:200; do
  IFS=: read -r name n limit <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\n%s\n' "$INDEX_EXTRA" > /tmp/index.toml
  log "index $name ($n docs, limit $limit s)"; cat /tmp/index.toml >> "$LOG"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-timeout $limit --tag run35-$name 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|leaked|Traceback|Error" "$OUT/index-$name.log" | cut -c1-300 | tail -8 | tee -a "$LOG"
  if [ "$name" = 20k ] && ! grep -q "engine workers ready" "$OUT/index-$name.log"; then
    log "forked workers did not come up: the 1M runs spawn them"
    tail -40 "$OUT/index-$name.log" > "$OUT/forkserver-failure.txt"
    export INDEX_EXTRA="start_method = \"spawn\"
$GRAPHS"
  fi
done
leftovers
log "done run35"
