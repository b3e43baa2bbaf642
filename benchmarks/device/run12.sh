# Device run 12 (session 4): the CUDA-graph path. GPU tests (graphs against eager, the vLLM fast
# path against vLLM), then single-request latency: hf with CUDA graphs, vLLM with fast_path_tokens.
source benchmarks/device/common.sh
log "start run12"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
timeout 300 python3 -m pytest -m gpu tests/test_gpu.py -k "graphs or fast_path" -x -s -q -p no:cacheprovider \
  > "$OUT/pytest.log" 2>&1; log "pytest rc=$?"
grep -E "GRAPHS|FAST PATH|passed|failed|Error|error" "$OUT/pytest.log" | tail -25 | tee -a "$LOG"
for spec in "hf:--backend hf" "fast:--backend vllm --option fast_path_tokens=8192 --option multiprocessing=off"; do
  name=${spec%%:*}; opts=${spec#*:}
  log "probe $name: $opts"
  timeout 240 python3 benchmarks/latency_probe.py --kind both --n 200 $opts --out "$OUT/probe-$name.json" \
    > "$OUT/probe-$name.log" 2>&1; log "rc=$?"
  grep -E "^(shape|format|embed|score)|up in|captured|Error" "$OUT/probe-$name.log" | tee -a "$LOG"
done
log "done run12"
