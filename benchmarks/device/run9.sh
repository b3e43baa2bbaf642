# Device run 9 (2026-11-22): py-spy profiles of single requests on the in-process engines (where
# do 10 ms go when the GPU works 1.5 ms?), then the reworked pool in the bench.
source benchmarks/device/common.sh
log "start run9"
profile_single() {  # NAME KIND: loop single requests on an in-process engine, profile 15 s of it
  local name=$1 kind=$2
  rm -f /tmp/warm
  log "profile $name ($kind, multiprocessing=off)"
  timeout 300 python3 benchmarks/latency_probe.py --kind $kind --option multiprocessing=off --n 50 \
    --loop-seconds 25 --marker /tmp/warm > "/tmp/$name.log" 2>&1 &
  local P=$!
  while [ ! -f /tmp/warm ] && kill -0 $P 2>/dev/null; do sleep 1; done
  local PY=$(pgrep -f "latency_probe.py --kind $kind" | head -1)
  log "py-spy on pid $PY"
  py-spy record --pid "$PY" --duration 15 --rate 500 --format raw -o "$OUT/$name.txt" > /tmp/pyspy.log 2>&1 \
    || log "py-spy failed: $(tail -3 /tmp/pyspy.log)"
  wait $P
  grep -E "^(shape|format|embed|score|loop)|Error" "/tmp/$name.log" | tee -a "$LOG"
  [ -f "$OUT/$name.txt" ] && python3 benchmarks/summarize_profile.py "$OUT/$name.txt" --top 45 > "$OUT/$name-summary.txt"
}
profile_single prof-emb embedding
profile_single prof-rr reranker
( tar czf /tmp/compile-cache.tgz -C / root/.cache/vllm tmp/torchinductor_root root/.triton 2>/dev/null; \
  ls -la /tmp/compile-cache.tgz | tee -a "$LOG"; \
  [ $(stat -c %s /tmp/compile-cache.tgz) -lt 16000000 ] && cp /tmp/compile-cache.tgz "$OUT/" )
KV="--option kv_cache_memory_bytes=8000000000 --option enable_prefix_caching=false"
BENCH_TIMEOUT=300 bench e4 --workload seed --workload tokens:300 -n 50000 $KV --sweep 'engines_per_gpu=4'
log "done run9"
