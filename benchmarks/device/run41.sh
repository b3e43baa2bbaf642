# Device run 41 (session 12, one H200): is the workers' ~20-25 s of imports the device's missing
# bytecode? The device runs Python with PYTHONDONTWRITEBYTECODE=1; run 40 compiled only the staged
# vLLM site (no gain). This run looks for .pyc files next to torch and transformers (the device's
# own site), times `from vllm import LLM` four at once without and with bytecode for every site on
# sys.path (written under PYTHONPYCACHEPREFIX=/tmp/pyc, as `pip install` would leave .pyc), then
# indexes 1M documents both ways on this machine (a 20k index fills vLLM's compile cache first).
# Where the device's own site already has bytecode, the second 1M run tries
# max_num_batched_tokens=131072 / max_num_seqs=4096 instead.
source benchmarks/device/common.sh
RUN=${RUN:-run41}
log "start $RUN"
leftovers
python3 - <<'PY' | tee -a "$LOG" | tee /tmp/facts
import glob, importlib.util, os, sys

print("python", sys.version.split()[0], "dont_write_bytecode", sys.flags.dont_write_bytecode,
      "PYTHONDONTWRITEBYTECODE", os.environ.get("PYTHONDONTWRITEBYTECODE"))
for m in ["torch", "transformers", "vllm", "sympy", "triton", "numpy"]:
    spec = importlib.util.find_spec(m)
    d = os.path.dirname(spec.origin)
    py = len(glob.glob(d + "/**/*.py", recursive=True))
    pyc = len(glob.glob(d + "/**/*.pyc", recursive=True))
    print(f"pkg {m} {d} py {py} pyc {pyc} writable {os.access(d, os.W_OK)}")
print("sys.path", [p for p in sys.path if p])
PY
imports4() {  # four processes at once, as the pool's workers import
  for i in 1 2 3 4; do
    /usr/bin/time -f "%e" -o /tmp/imp$i python3 -c "from vllm import LLM; from vllm.config import PoolerConfig" > /dev/null 2>&1 &
  done
  wait
  log "from vllm import LLM, four at once, $1: $(cat /tmp/imp1 /tmp/imp2 /tmp/imp3 /tmp/imp4 | tr '\n' ' ')s"
}
imports4 "as the device runs"
TORCH_PYC=$(awk '/^pkg torch /{print ($7 > $5 / 2) ? 1 : 0}' /tmp/facts)
if [ "$TORCH_PYC" = 1 ]; then
  log "torch already has bytecode: the second 1M run tries 131072 batched tokens instead"
  VARIANT=tokens
else
  VARIANT=pyc
  SITES=$(python3 -c "import sys, os; print(' '.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages', 'vsite')) and os.path.isdir(p)))")
  export PYTHONPYCACHEPREFIX=/tmp/pyc
  /usr/bin/time -f "%e s" -o /tmp/t timeout 120 python3 -m compileall -q -j 16 $SITES > /dev/null 2>&1
  log "compileall $SITES into $PYTHONPYCACHEPREFIX: $(cat /tmp/t); .pyc: $(find /tmp/pyc -name '*.pyc' | wc -l)"
  imports4 "with bytecode"
  unset PYTHONPYCACHEPREFIX
fi
for tag in 20k:20000:130:base 1m-a:1000000:200:base 1m-b:1000000:200:$VARIANT; do
  IFS=: read -r name n limit variant <<< "$tag"
  leftovers > /dev/null
  printf '[embedding]\nengines_per_gpu = 4\nenable_prefix_caching = false\nkv_cache_memory_bytes = 8000000000\n' > /tmp/index.toml
  if [ "$variant" = tokens ]; then
    printf 'max_num_batched_tokens = 131072\nmax_num_seqs = 4096\n' >> /tmp/index.toml
  else
    printf 'max_num_batched_tokens = 65536\nmax_num_seqs = 2048\n' >> /tmp/index.toml
  fi
  ENVS=(--index-env QWEN3_RAG_CONFIG=/tmp/index.toml)
  [ "$variant" = pyc ] && ENVS+=(--index-env PYTHONPYCACHEPREFIX=/tmp/pyc)
  log "index $name ($n docs, limit $limit s, $variant)"
  python3 benchmarks/gpu_e2e.py --n $n --out "$OUT" --step index "${ENVS[@]}" \
    --index-timeout $limit --tag $RUN-$name 2>&1 | grep --line-buffered -E "index_seconds|phases|time  |Error|error" \
    | cut -c1-400 | tee -a "$LOG"
  cp "$OUT/index.log" "$OUT/index-$name.log"
  grep -E "engine workers ready|is ready after|init engine|Graph capturing finished|leaked|Traceback|Error" \
    "$OUT/index-$name.log" | cut -c1-300 | tail -12 | tee -a "$LOG"
done
leftovers
log "done $RUN"
