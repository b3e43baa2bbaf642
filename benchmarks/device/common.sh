# Sourced by the device scripts: the staged vLLM, this checkout's src, py-spy from /tmp/site.
set -u
[ -f /opt/vsite/activate ] && source /opt/vsite/activate
export PYTHONPATH=$PWD/src:/tmp/site:${PYTHONPATH:-}
export PATH=/tmp/site/bin:$PATH
export TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG=$OUT/run.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
# bench NAME ARGS...: qwen3-rag bench, rows appended to the log, JSON to $OUT/NAME.json
bench() {
  local name=$1; shift
  log "bench $name: $*"
  timeout ${BENCH_TIMEOUT:-400} python3 -m qwen3_rag.bench --backend vllm --repeats 1 --out /tmp/bench-$name "$@" 2>&1 \
    | tee -a "$OUT/full.log" \
    | grep --line-buffered -E "^(embed|rerank|task|---)|recommendation|failed|Traceback|Error|error" | tee -a "$LOG"
  cp /tmp/bench-$name/results.json "$OUT/$name.json" 2>/dev/null || log "bench $name: no results"
}
# what else runs on the machine (a leftover engine core or server skews every figure), then stop it
leftovers() {
  ps -eo pid,pcpu,rss,etimes,args --sort=-pcpu | grep -vE "ps -eo|grep" | head -6 | cut -c1-160 | tee -a "$LOG"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | tee -a "$LOG"
  pkill -9 -f "VLLM::|qwen3_rag serve|pytest -m gpu" && log "killed leftovers" || true
}
# per bench JSON in $OUT: docs/s, start-up, and where each worker's start-up went (startup_workers)
startup_table() {
python3 - <<'PY' | tee -a "$LOG"
import glob, json, os
for f in sorted(glob.glob(os.environ["OUT"] + "/*.json")):
    for r in json.load(open(f))["rows"]:
        w = r.get("startup_workers") or []
        print(os.path.basename(f), round(r.get("items_per_s", 0)), "start-up", r.get("startup_s"),
              "workers", [" ".join(f"{k[:3]} {v}" for k, v in x.items()) for x in w])
PY
}
# gpu_tests LIMIT ARGS...: pytest -m gpu ARGS, py-spy stacks of it and its children if it runs past LIMIT s
gpu_tests() {
  local limit=$1; shift
  log "gpu tests: $*"
  python3 -m pytest -m gpu -q -s -p no:cacheprovider "$@" > "$OUT/pytest.log" 2>&1 &
  local pyt=$!
  for _ in $(seq "$limit"); do kill -0 $pyt 2>/dev/null || break; sleep 1; done
  if kill -0 $pyt 2>/dev/null; then
    log "pytest still running after $limit s: stacks in stacks-pytest.txt"
    for p in $pyt $(pgrep -P $pyt); do py-spy dump --pid $p >> "$OUT/stacks-pytest.txt" 2>&1; done
    kill -9 $pyt
  fi
  wait $pyt; log "pytest rc $?"
  grep -vE "^\s*$" "$OUT/pytest.log" | grep -E "passed|failed|Error|assert|cos|Δ|start-up|PASS|FAIL|FAST|POOL|VLLM" \
    | cut -c1-300 | tail -25 | tee -a "$LOG"
}
