"""Reliability probe: real processes, files and a real server on loopback; prints counts that must
all be zero (exit status 1 otherwise).

Four campaigns:

- **kills**: indexing runs (``index_corpus`` in a subprocess, or ``qwen3-rag index`` with ``--cli``)
  SIGKILLed at random moments, some while they save, then resumed; after each kill the store
  must load (or have no version yet) and hold a whole version; at the end it must equal a
  store built without interruption (lost, duplicated and wrong documents, leftover files).
- **writers**: while one indexing run writes a store, a second run and an in-process
  ``FaissStore.save`` must be refused at once naming the first's pid; nothing of the first is lost.
- **corruption**: each file of a saved store flipped, truncated or deleted; ``FaissStore.load``
  must fail naming the file (or its version directory), never load different contents.
- **hostile**: requests against ``qwen3-rag serve`` (tiny models, an API key, small limits):
  missing or wrong keys, bad JSON, wrong methods and paths, malformed and huge filters and
  numbers, oversized bodies, requests over the token budget, and valid random filters whose
  results are checked against an independent Python evaluation; no 5xx, no wrong status or result.

Run ``python tests/reliability_probe.py`` (a few minutes on two cores); ``--kills``,
``--requests``, ``--docs`` make bigger campaigns, ``--only`` runs some of them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SRC = str(HERE.parent / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}

from indexing_support import HashEmbedder, committed_count, index_command, topic_records, write_jsonl  # noqa: E402

from qwen3_rag import FaissStore, index_corpus  # noqa: E402
from qwen3_rag.indexing import STAGING  # noqa: E402
from qwen3_rag.store.layout import CURRENT, StoreError  # noqa: E402
from qwen3_rag.store.lock import StoreLockedError  # noqa: E402

CAMPAIGNS = ("kills", "writers", "corruption", "hostile")


# ------------------------------------------------------------------------------ indexing worker
class SlowHash(HashEmbedder):
    """Hash vectors, ``delay`` seconds per batch (a model's pace, so that kills land mid-run)."""

    def __init__(self, delay: float):
        super().__init__(dim=32)
        self.delay = delay

    def embed_documents(self, texts):
        time.sleep(self.delay)
        return super().embed_documents(texts)


def worker(corpus: str, store: str, delay: float) -> int:
    """One indexing run (``python reliability_probe.py worker ...``); 2 and one line when locked."""
    try:
        index_corpus(corpus, store, SlowHash(delay), batch_size=16, commit_every=64, show_progress=False)
    except StoreLockedError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


def pace(args: argparse.Namespace) -> float:
    """Seconds per batch of 16 that make an indexing run of ``args.docs`` last about 3 s."""
    return 0.0 if args.cli else 3.0 / max(1, args.docs // 16)


def index_cmd(args: argparse.Namespace, corpus: Path, store: Path, delay: float = 0.0) -> list[str]:
    if args.cli:
        return index_command(corpus, store, args.model)
    return [sys.executable, __file__, "worker", str(corpus), str(store), str(delay)]


def snapshot(path: Path) -> tuple[list[str], dict[str, tuple[str, str, bytes]]]:
    """A saved store's ids in order, and per id its text, metadata (JSON) and vector bytes."""
    store = FaissStore.load(path)
    recs = list(store.iter_records())
    ids = [r.id for r in recs]
    vecs = store.vectors(ids) if ids else []
    return ids, {r.id: (r.text, json.dumps(r.metadata, sort_keys=True), v.tobytes())
                 for r, v in zip(recs, vecs, strict=True)}


def compare(got: Path, ref: Path, counts: Counter) -> None:
    ids, rows = snapshot(got)
    ref_ids, ref_rows = snapshot(ref)
    counts["lost"] += len(set(ref_ids) - set(ids))
    counts["duplicated"] += len(ids) - len(set(ids))
    counts["wrong"] += sum(1 for i, row in rows.items() if ref_rows.get(i) != row)
    counts["wrong"] += ids != ref_ids and not (set(ref_ids) - set(ids)) and len(ids) == len(set(ids))
    leftovers = {p.name for p in got.iterdir()} - {CURRENT, (got / CURRENT).read_text().strip()}
    counts["leftovers"] += len(leftovers)


# ------------------------------------------------------------------------------------- kills
def kill_when(proc: subprocess.Popen, store: Path, mode: str, within: float, rng: random.Random) -> bool:
    """SIGKILL ``proc`` at a random moment (``mode="random"``) or while it saves; whether it was
    killed (False: it finished first)."""
    deadline = time.monotonic() + (rng.uniform(0.0, within) if mode == "random" else 600)
    versions = {p.name for p in store.glob("v-*")} if store.exists() else set()
    while proc.poll() is None and time.monotonic() < deadline:
        if mode == "save" and store.exists():
            names = set(os.listdir(store))
            new = {n for n in names if n.startswith("v-")} - versions
            if new or any(n.startswith(".tmp-v-") for n in names):
                time.sleep(rng.uniform(0, 0.01))  # somewhere in write, rename, swap or prune
                break
        time.sleep(0.0005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def check_whole(store: Path, allowed: list[set[str]], counts: Counter) -> None:
    """After a kill: the store has no version yet, or loads and holds one of ``allowed``."""
    if not (store / CURRENT).exists():
        return
    try:
        ids = set(snapshot(store)[0])
    except Exception as e:
        counts["unloadable_after_kill"] += 1
        print(f"  unloadable after a kill: {e}", file=sys.stderr)
        return
    counts["partial_version_after_kill"] += ids not in allowed


def kill_campaign(args: argparse.Namespace, work: Path, counts: Counter) -> None:
    rng = random.Random(args.seed)
    base_recs = topic_records(args.docs // 4)
    more = [{**r, "id": f"m{r['id']}"} for r in topic_records(args.docs)]
    base_corpus, corpus = write_jsonl(work / "base.jsonl", base_recs), write_jsonl(work / "more.jsonl", more)
    ref, delay = work / "ref", pace(args)
    subprocess.run(index_cmd(args, base_corpus, ref), env=ENV, check=True, capture_output=True, timeout=900)
    start = time.monotonic()
    subprocess.run(index_cmd(args, corpus, ref, delay), env=ENV, check=True, capture_output=True, timeout=900)
    within = time.monotonic() - start  # how long an uninterrupted run of the second corpus takes
    episode = 0
    while counts["kills"] < args.kills:
        episode += 1
        store = work / f"kill-{episode}"
        subprocess.run(index_cmd(args, base_corpus, store), env=ENV, check=True, capture_output=True,
                       timeout=900)
        allowed = [{r["id"] for r in base_recs}, {r["id"] for r in base_recs + more}]
        for attempt in range(100):
            mode = "save" if attempt % 3 == 2 else "random"
            proc = subprocess.Popen(index_cmd(args, corpus, store, delay), env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            if not kill_when(proc, store, mode, within, rng):
                if proc.returncode != 0:
                    counts["failed_runs"] += 1
                    print(proc.stderr.read().decode()[-1000:], file=sys.stderr)
                break
            counts["kills"] += 1
            counts["kills_during_save"] += mode == "save"
            check_whole(store, allowed, counts)
        compare(store, ref, counts)
        shutil.rmtree(store)
    print(f"kills: {counts['kills']} in {episode} episodes ({counts['kills_during_save']} during a save)")


# ----------------------------------------------------------------------------------- writers
def writers_campaign(args: argparse.Namespace, work: Path, counts: Counter) -> None:
    recs = topic_records(args.docs)
    corpus, store, ref = write_jsonl(work / "w.jsonl", recs), work / "w-store", work / "w-ref"
    subprocess.run(index_cmd(args, corpus, ref), env=ENV, check=True, capture_output=True, timeout=900)
    first = subprocess.Popen(index_cmd(args, corpus, store, 5 * pace(args)), env=ENV, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while committed_count(store / STAGING) == 0:
            if first.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the first writer did not start: {first.stderr.read().decode()[-800:]}")
            time.sleep(0.01)
        t0 = time.monotonic()
        second = subprocess.run(index_cmd(args, corpus, store), env=ENV, capture_output=True, text=True,
                                timeout=300)
        lines = second.stderr.strip().splitlines()
        refused = second.returncode == 2 and len(lines) == 1 and f"pid {first.pid}" in lines[0]
        counts["second_writer_not_refused"] += not refused
        try:
            other = FaissStore(32)
            other.add(["x"], [[1.0] + [0.0] * 31], ids=["intruder"])
            other.save(store)
            counts["second_writer_not_refused"] += 1
        except StoreLockedError as e:
            counts["second_writer_not_refused"] += f"pid {first.pid}" not in str(e)
        counts["second_writer_slow"] += time.monotonic() - t0 > 60
        counts["first_writer_died"] += first.poll() is not None
    finally:
        rc = first.wait(timeout=900)
    counts["failed_runs"] += rc != 0
    compare(store, ref, counts)
    print("writers: a second index run and an in-process save tried while the first ran")


# -------------------------------------------------------------------------------- corruption
DAMAGES = ("flip-first", "flip-middle", "flip-last", "truncate-half", "truncate-one", "empty", "delete")


def damage(file: Path, how: str) -> None:
    if how == "delete":
        file.unlink()
        return
    data = bytearray(file.read_bytes())
    if how.startswith("flip"):
        at = {"flip-first": 0, "flip-middle": len(data) // 2, "flip-last": len(data) - 2}[how]
        data[at] ^= 0x5A
    else:
        data = data[: {"truncate-half": len(data) // 2, "truncate-one": len(data) - 1, "empty": 0}[how]]
    file.write_bytes(bytes(data))


def corruption_campaign(args: argparse.Namespace, work: Path, counts: Counter) -> None:
    recs = topic_records(200)
    good = work / "c-good"
    index_corpus(write_jsonl(work / "c.jsonl", recs), good, HashEmbedder(dim=32), batch_size=16,
                 show_progress=False)
    expected = snapshot(good)
    version = (good / CURRENT).read_text().strip()
    cases = 0
    for rel in (CURRENT, f"{version}/manifest.json", f"{version}/index.faiss", f"{version}/docs.sqlite"):
        for how in DAMAGES:
            case = work / "c-case"
            shutil.rmtree(case, ignore_errors=True)
            shutil.copytree(good, case)
            damage(case / rel, how)
            cases += 1
            try:
                got = snapshot(case)
            except (StoreError, FileNotFoundError) as e:
                where = CURRENT if rel == CURRENT else str(case / version)  # the file or its version
                named = str(case / rel) in str(e) or where in str(e)
                counts["corruption_unnamed"] += not named
                if not named:
                    print(f"  {rel} {how}: {e}", file=sys.stderr)
                continue
            except Exception as e:
                counts["corruption_raw_error"] += 1
                print(f"  {rel} {how}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            counts["corruption_silent_wrong"] += got != expected
    print(f"corruption: {cases} damaged stores")


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    sys.exit(worker(sys.argv[2], sys.argv[3], float(sys.argv[4])))

from hostile_requests import hostile_campaign  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of indexing runs (default 20)")
    p.add_argument("--requests", type=int, default=600, help="hostile requests (default 600)")
    p.add_argument("--docs", type=int, default=2000, help="documents of the indexing corpora (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cli", action="store_true", help="kill `qwen3-rag index` with a tiny model instead "
                   "of index_corpus with hash vectors (slower: each run imports torch)")
    p.add_argument("--only", action="append", choices=CAMPAIGNS, help="run only these campaigns")
    args = p.parse_args(argv)
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="qwen3-rag-probe-") as tmp:
        work = Path(tmp)
        args.model = None
        if args.cli or "hostile" in (args.only or CAMPAIGNS):
            from qwen3_rag.testing import make_tiny_qwen3

            args.model = make_tiny_qwen3(work / "tiny-emb", kind="embedding", seed=0)
            args.reranker = make_tiny_qwen3(work / "tiny-rr", kind="reranker", seed=1)
        runs = {"kills": kill_campaign, "writers": writers_campaign, "corruption": corruption_campaign,
                "hostile": hostile_campaign}
        for name in args.only or CAMPAIGNS:
            start = time.monotonic()
            runs[name](args, work, counts)
            print(f"  ({time.monotonic() - start:.0f} s)")
    bad = {k: v for k, v in counts.items() if k not in ("kills", "kills_during_save", "requests") and v}
    if "kills" in (args.only or CAMPAIGNS) and not counts["kills_during_save"]:
        bad["no_kill_during_a_save"] = 1
    print(json.dumps({"counts": dict(counts), "failures": bad}, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    sys.exit(main())
