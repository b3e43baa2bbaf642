# Device run 1 (2026-11-22): profile one engine, then 1 vs 4 engines without prefix caching.
source benchmarks/device/common.sh
log "start"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
python3 -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$LOG"
python3 -c "from qwen3_rag.bench import resolve_model; print(resolve_model('random:0.6B', 'embedding', '/tmp/qwen3-rag-bench'))" 2>&1 | tail -1 | tee -a "$LOG"
log "profile: 1 engine (in-process front end), seed docs"
rm -f /tmp/warm
python3 benchmarks/profile_engine.py --seconds 40 --marker /tmp/warm --n 20000 > /tmp/prof1.log 2>&1 &
P=$!
while [ ! -f /tmp/warm ] && kill -0 $P 2>/dev/null; do sleep 1; done
py-spy record --pid $P --subprocesses --duration 20 --rate 40 --format raw -o "$OUT/prof1.txt" > /tmp/pyspy.log 2>&1 || log "py-spy failed: $(tail -2 /tmp/pyspy.log)"
wait $P
grep -E "profile_engine|Error|error" /tmp/prof1.log | tail -5 | tee -a "$LOG"
[ -f "$OUT/prof1.txt" ] && python3 benchmarks/summarize_profile.py "$OUT/prof1.txt" --top 30 > "$OUT/prof1_summary.txt"
bench e1 --workload seed --workload tokens:300 -n 50000 --sweep 'engines_per_gpu=1;enable_prefix_caching=false'
bench e4 --workload seed --workload tokens:300 -n 50000 --sweep 'engines_per_gpu=4;enable_prefix_caching=false'
log "done"
