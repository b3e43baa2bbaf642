# Device run 37 (prepared in session 10, not run: the device time was spent): is vLLM's import
# slower on the device because the staged site has no bytecode? ../shared/gpu stages vLLM with
# `pip --no-compile`, and run 35's processes ran with -B (no .pyc written), so every worker
# compiles the staged sources it imports (1,197 of its 6,113 modules; compiling them took
# 1.7 s on this project's CPU machine, so expect ~2 s of a worker's 15-27 s). Times
# `from vllm import LLM` without .pyc, then after compileall (as `pip install` leaves a site).
# Run as call 2 right after `bash .gpu/a/stage.sh` (unpacks part 2 itself, no import check).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; LOG=$OUT/run.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
Z=$(command -v zstd || echo /root/vstage/zstd)
mkdir -p /opt/vsite && cat /root/vstage/part1 .gpu/b/part2 | "$Z" -d -q -c --long=27 | tar x -C /opt/vsite
source /opt/vsite/activate
log "unpacked; flags: $(python3 -c 'import sys, os; print(sys.flags.dont_write_bytecode, os.environ.get("PYTHONDONTWRITEBYTECODE"))')"
log "vllm .pyc files: $(find /opt/vsite/vllm -name '*.pyc' | wc -l) of $(find /opt/vsite/vllm -name '*.py' | wc -l) .py"
for i in 1 2; do
  /usr/bin/time -f "%e s wall, %U s user" -o /tmp/t python3 -B -c "from vllm import LLM" 2>/dev/null
  log "from vllm import LLM, no .pyc ($i): $(cat /tmp/t)"
done
/usr/bin/time -f "%e s wall" -o /tmp/t python3 -m compileall -q -j 16 /opt/vsite > /dev/null 2>&1
log "compileall /opt/vsite: $(cat /tmp/t); vllm .pyc files now: $(find /opt/vsite/vllm -name '*.pyc' | wc -l)"
for i in 1 2; do
  /usr/bin/time -f "%e s wall, %U s user" -o /tmp/t python3 -B -c "from vllm import LLM" 2>/dev/null
  log "from vllm import LLM, with .pyc ($i): $(cat /tmp/t)"
done
log "done run37"
