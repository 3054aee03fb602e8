"""The speed benchmarks still run against the current code (tiny sizes; their figures are not
checked: timings never belong in tests)."""

import subprocess
import sys

import pytest
from conftest import ROOT, script_env

TINY = [
    "--device",
    "cpu",
    "--train-size",
    "32",
    "--frame",
    "32",
    "32",
    "--steps",
    "1",
    "--skip-compile",
]


@pytest.mark.parametrize(
    "script, extra",
    [("fast_speed.py", ["--skip-cli"]), ("arbitrary_speed.py", [])],
)
def test_speed_benchmark_prints_its_table(script, extra):
    result = subprocess.run(
        [sys.executable, script, *TINY, *extra],
        cwd=ROOT / "benchmarks",
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fp32 eager (baseline)" in result.stdout and "× fp32 eager" in result.stdout
