# Device run 13 (session 4): query latency through qwen3-rag serve over 1M vectors, with the
# CUDA-graph fast path (serve's default on vLLM since session 4), then without it on the same store.
source benchmarks/device/common.sh
log "start run13"
[ -f .ccache/compile-cache.tgz ] && tar xzf .ccache/compile-cache.tgz -C / && log "compile cache restored"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
printf '[embedding]\nfast_path_tokens = 0\n[reranker]\nfast_path_tokens = 0\n' > /tmp/nofast.toml
timeout 330 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --reuse-store \
  --queries 300 --tag fast 2>&1 | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
timeout 230 python3 benchmarks/gpu_e2e.py --n 1000000 --out "$OUT" --step serve --synthetic-store --reuse-store \
  --queries 300 --tag nofast --serve-env QWEN3_RAG_CONFIG=/tmp/nofast.toml 2>&1 \
  | grep --line-buffered -vE "^\[transformers\]|INFO|Capturing" | tee -a "$LOG"
log "done run13"
