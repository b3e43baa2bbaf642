# Device run 8 (2026-11-22): single-request latency of the engines as the service calls them:
# both engines as served (spawned engine cores) with a py-spy profile of single requests, then
# each engine in-process with the GPU kernels' time from torch.profiler.
source benchmarks/device/common.sh
log "start run8"
probe() {
  local name=$1; shift
  log "probe $name: $*"
  timeout ${PROBE_TIMEOUT:-240} python3 benchmarks/latency_probe.py --out "$OUT/$name.json" "$@" > "/tmp/$name.log" 2>&1
  cp "/tmp/$name.log" "$OUT/$name.log"
  grep -E "^(shape|format|embed|score|loop|reranker up|embedder up)|Error|error" "/tmp/$name.log" | grep -v "^{" | tee -a "$LOG"
}
rm -f /tmp/warm
probe spawn --kind both --loop-seconds 30 --marker /tmp/warm &
P=$!
while [ ! -f /tmp/warm ] && kill -0 $P 2>/dev/null; do sleep 1; done
PY=$(pgrep -f "latency_probe.py --out $OUT/spawn.json" | head -1)
py-spy record --pid $PY --subprocesses --duration 20 --rate 200 --format raw -o "$OUT/prof-latency.txt" > /tmp/pyspy.log 2>&1 \
  || log "py-spy failed: $(tail -2 /tmp/pyspy.log)"
wait $P
[ -f "$OUT/prof-latency.txt" ] && python3 benchmarks/summarize_profile.py "$OUT/prof-latency.txt" --top 40 > "$OUT/prof-latency-summary.txt"
probe off-emb --kind embedding --option multiprocessing=off --torch-profile
probe off-rr --kind reranker --option multiprocessing=off --torch-profile
log "done run8"
