# Device run 43 (session 12, one H200, run 42's machine right after it): two settings on top of
# bytecode, one 1M index each: max_num_batched_tokens=131072 / max_num_seqs=4096 ("tokens"), and
# 10 CUDA graph sizes ("graphs"). Compare the stream's pace (staged_vectors) with run 42.
source benchmarks/device/common.sh
RUN=${RUN:-run43}
log "start $RUN"
export PYTHONPYCACHEPREFIX=/tmp/pyc
for tag in ${RUNS:-tokens:1000000:200 graphs:1000000:200}; do
  IFS=: read -r name n limit <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\n' > /tmp/index.toml
  if [ "$name" = tokens ]; then
    printf 'max_num_batched_tokens = 131072\nmax_num_seqs = 4096\n' >> /tmp/index.toml
  else
    printf 'max_num_batched_tokens = 65536\nmax_num_seqs = 2048\ncompilation_config = { cudagraph_capture_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] }\n' >> /tmp/index.toml
  fi
  log "index $name ($n docs, limit $limit s, bytecode)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-env PYTHONPYCACHEPREFIX=/tmp/pyc --index-timeout $limit --tag $RUN-$name 2>&1 \
    | grep --line-buffered -E "index_seconds|phases|time  |Error|error" | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|init engine|leaked|Traceback" "$OUT/index-$name.log" | cut -c1-300 | tail -6 | tee -a "$LOG"
done
leftovers
log "done $RUN"
