# Device run 42 (session 12, one H200): run 41's "with bytecode" 1M index again (ran three times,
# RUNS='1m-a:1000000:200 1m-b:1000000:200 1m-c:1000000:200', on run 41's machine while it was
# still held, so its compile cache was warm; on a fresh machine keep the 20k run first): bytecode
# for every site on sys.path under PYTHONPYCACHEPREFIX=/tmp/pyc (the device's torch site has no
# .pyc and its Python writes none).
source benchmarks/device/common.sh
RUN=${RUN:-run42}
log "start $RUN"
leftovers
export PYTHONPYCACHEPREFIX=/tmp/pyc
SITES=$(python3 -c "import sys, os; print(' '.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages', 'vsite')) and os.path.isdir(p)))")
/usr/bin/time -f "%e s" -o /tmp/t timeout 120 python3 -m compileall -q -j 16 $SITES > /dev/null 2>&1
log "compileall $SITES into $PYTHONPYCACHEPREFIX: $(cat /tmp/t); .pyc: $(find /tmp/pyc -name '*.pyc' | wc -l)"
for tag in ${RUNS:-20k:20000:130 1m-a:1000000:200 1m-b:1000000:200}; do
  IFS=: read -r name n limit <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\nmax_num_batched_tokens = 65536\nmax_num_seqs = 2048\n' > /tmp/index.toml
  log "index $name ($n docs, limit $limit s, bytecode)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index --index-env QWEN3_RAG_CONFIG=/tmp/index.toml \
    --index-env PYTHONPYCACHEPREFIX=/tmp/pyc --index-timeout $limit --tag $RUN-$name 2>&1 \
    | grep --line-buffered -E "index_seconds|phases|time  |Error|error" | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|leaked|Traceback" "$OUT/index-$name.log" | cut -c1-300 | tail -4 | tee -a "$LOG"
done
leftovers
log "done $RUN"
