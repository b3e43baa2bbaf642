# Device run 10 (2026-11-22): in-process engine core (multiprocessing=off) against spawned, for
# throughput (1 engine, 4 pool workers) and single-request latency (the service's two engines);
# a py-spy profile of single reranking requests; bigger steps for 300-token documents.
source benchmarks/device/common.sh
log "start run10"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
rm -f /tmp/warm
timeout 240 python3 benchmarks/latency_probe.py --kind reranker --option multiprocessing=off --n 50 \
  --loop-seconds 25 --marker /tmp/warm > /tmp/prof-rr.log 2>&1 &
while [ ! -f /tmp/warm ] && pgrep -f "^python3 benchmarks/latency_probe.py" >/dev/null; do sleep 1; done
PY=$(pgrep -f "^python3 benchmarks/latency_probe.py" | head -1)
log "py-spy on pid $PY: $(cat /proc/$PY/cmdline | tr '\0' ' ' | cut -c1-80)"
py-spy record --pid "$PY" --duration 15 --rate 200 --format raw -o "$OUT/prof-rr.txt" > /tmp/pyspy.log 2>&1 \
  || log "py-spy failed: $(head -5 /tmp/pyspy.log)"
wait
[ -f "$OUT/prof-rr.txt" ] && python3 benchmarks/summarize_profile.py "$OUT/prof-rr.txt" --top 45 > "$OUT/prof-rr-summary.txt"
grep -E "^(shape|format|embed|score|loop)" /tmp/prof-rr.log | tee -a "$LOG"
log "probe: embedder spawned, reranker in-process (one process, as a service could run them)"
timeout 200 python3 - > /tmp/mixed.log 2>&1 <<'PY'
import sys; sys.argv = ["latency_probe.py"]
sys.path.insert(0, "benchmarks")
import latency_probe, time
from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.bench import resolve_model, seed_docs
emb = Qwen3Embedder(resolve_model("random:0.6B", "embedding", "/tmp/qwen3-rag-bench"), backend="vllm")
rr = Qwen3Reranker(resolve_model("random:0.6B", "reranker", "/tmp/qwen3-rag-bench"), backend="vllm", multiprocessing="off")
one = emb.formatter.queries(["what are the latest findings about databases?"], emb.query_instruction)
p20 = rr.formatter.pairs([("what are the latest findings about databases?", d) for d in seed_docs(20)], rr.instruction)
for name, fn in (("mixed: embed 1 query (spawn)", lambda: emb.engine.embed(one)),
                 ("mixed: score 20 pairs (off)", lambda: rr.engine.score(p20))):
    r = latency_probe.timed(fn, 200)
    print(f"{name:<32} p50 {r['p50']:.2f} p90 {r['p90']:.2f} p99 {r['p99']:.2f} ms", flush=True)
rr.engine.close(); emb.engine.close()
PY
grep -E "^mixed|Error" /tmp/mixed.log | tee -a "$LOG"; cp /tmp/mixed.log "$OUT/"
BENCH_TIMEOUT=330 bench mp --workload seed -n 50000 --option enable_prefix_caching=false \
  --sweep 'engines_per_gpu=1;multiprocessing=off,spawn'
KV="--option kv_cache_memory_bytes=8000000000 --option enable_prefix_caching=false"
BENCH_TIMEOUT=200 bench e4off --workload seed -n 50000 $KV --sweep 'engines_per_gpu=4;multiprocessing=off'
BENCH_TIMEOUT=200 bench e4t32 --workload tokens:300 -n 50000 $KV --sweep 'engines_per_gpu=4;max_num_batched_tokens=32768'
log "done run10"
