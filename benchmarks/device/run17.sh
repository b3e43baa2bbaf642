# Device run 17 (session 5): regional torch.compile of the fast path's decoder layers (one
# compilation for all layers and buckets) and use_cache=False. GPU parity tests (tiny), then
# single-call latency of the hf graphs without and with torch_compile (0.6B shapes).
source benchmarks/device/common.sh
log "start run17"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
python3 -c "import torch, transformers, vllm; print(torch.__version__, transformers.__version__, vllm.__version__)" \
  2>/dev/null | tee -a "$LOG"
timeout 200 python3 -m pytest -m gpu tests/test_gpu.py -k "tiny and (graphs or fast_path)" -x -s -q \
  -p no:cacheprovider > "$OUT/pytest.log" 2>&1; log "pytest rc=$?"
grep -E "GRAPHS|FAST PATH|passed|failed|Error|error" "$OUT/pytest.log" | tail -25 | tee -a "$LOG"
for spec in "hf:" "hfc:--option torch_compile=true"; do
  name=${spec%%:*}; opts=${spec#*:}
  log "probe $name: $opts"
  timeout 170 python3 benchmarks/latency_probe.py --kind both --n 200 --small-only --backend hf $opts \
    --out "$OUT/probe-$name.json" > "$OUT/probe-$name.log" 2>&1; log "rc=$?"
  grep -E "^(shape|format|embed|score)|up in|captured|Error" "$OUT/probe-$name.log" | tee -a "$LOG"
done
tar czf "$OUT/inductor-cache.tgz" -C / tmp/torchinductor_root 2>/dev/null; ls -la "$OUT" | tail -4
log "done run17"
