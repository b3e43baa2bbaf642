# Device run 15 (session 4): CUDA graphs of the torch.compile'd forward (run 12: graphs of the
# eager transformers forward were launch-bound: 5.4 ms per query, 21.5 ms per 20 pairs).
source benchmarks/device/common.sh
log "start run15"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
log "probe hf+compile"
timeout 280 python3 benchmarks/latency_probe.py --kind both --n 200 --backend hf --option torch_compile=true \
  --out "$OUT/probe-hfc.json" > "$OUT/probe-hfc.log" 2>&1; log "rc=$?"
grep -E "^(shape|format|embed|score)|up in|Error" "$OUT/probe-hfc.log" | tee -a "$LOG"
timeout 290 python3 -m pytest -m gpu tests/test_gpu.py -k "tiny and (True or fast_path)" -x -s -q \
  -p no:cacheprovider > "$OUT/pytest.log" 2>&1; log "pytest rc=$?"
grep -E "GRAPHS|FAST PATH|passed|failed|Error|error" "$OUT/pytest.log" | tail -25 | tee -a "$LOG"
tar czf "$OUT/inductor-cache.tgz" -C / tmp/torchinductor_root 2>/dev/null; ls -la "$OUT" | tail -3
log "done run15"
