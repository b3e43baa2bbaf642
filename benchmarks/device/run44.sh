# Device run 44 (session 12, one H200, no vLLM staged): the bytecode warning where it was made for.
# The device's torch site has no .pyc and its Python writes none: warn_if_uncompiled("hf") should
# name torch and a compileall command; after that command, `import torch` should be faster and the
# warning gone.
set -u
export PYTHONPATH=$PWD/src
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; LOG=$OUT/run.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
check() {
  python3 - <<'PY' 2>&1 | tee -a "$LOG"
import logging, sys, time
logging.basicConfig(format="%(levelname)s %(message)s")
from qwen3_rag.engine.bytecode import warn_if_uncompiled
print("dont_write_bytecode", sys.flags.dont_write_bytecode, "missing", warn_if_uncompiled("hf"))
PY
}
timed_import() { /usr/bin/time -f "%e" -o /tmp/t python3 -c "import torch, transformers" 2>/dev/null; log "import torch, transformers ($1): $(cat /tmp/t) s"; }
log "start run44"
check
timed_import "as the device runs"
CMD=$(grep -o "Compile them once: .* (a read-only" "$LOG" | sed 's/Compile them once: //; s/ (a read-only//' | head -1)
log "running: $CMD"
/usr/bin/time -f "%e" -o /tmp/t $CMD > /dev/null 2>&1; log "compileall took $(cat /tmp/t) s"
check
timed_import "after the command"
log "done run44"
