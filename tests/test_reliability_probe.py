"""The reliability probe, small: a few SIGKILLed indexing runs (one during a save), the
concurrent writer, the corruption matrix and a hundred hostile requests, every count zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent / "reliability_probe.py"
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.slow
def test_the_probe_counts_nothing_lost_corrupt_or_wrong():
    proc = subprocess.run([sys.executable, str(PROBE), "--kills", "4", "--requests", "100", "--docs", "400"],
                          env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 0, (report, proc.stderr[-3000:])
    counts = report["counts"]
    assert counts["kills"] >= 4 and counts["kills_during_save"] >= 1 and counts["requests"] >= 100
    assert report["failures"] == {}
