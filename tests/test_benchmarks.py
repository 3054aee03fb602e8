"""The speed benchmarks still run against the current code (tiny sizes; their figures are not
checked: timings never belong in tests)."""

import subprocess
import sys

import pytest
from conftest import ROOT, script_env

from nst.methods.common import runs_natively, torch_device

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


def run_benchmark(script: str, arguments: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run benchmarks/`script` against this checkout, its output captured."""
    return subprocess.run(
        [sys.executable, script, *arguments],
        cwd=ROOT / "benchmarks",
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "script, extra",
    [("fast_speed.py", ["--skip-cli"]), ("arbitrary_speed.py", ["--augment-sizes", "32"])],
)
def test_speed_benchmark_prints_its_table(script, extra):
    result = run_benchmark(script, [*TINY, *extra], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fp32 eager (baseline)" in result.stdout and "× fp32 eager" in result.stdout
    if script == "arbitrary_speed.py":
        assert "StyleAugment() (shipped model), 32 px" in result.stdout


def test_the_start_image_benchmark_scores_each_start_at_each_step():
    pair = "sample:chelsea:sample:mosaic"
    result = run_benchmark(
        "basic_start.py", ["--pairs", pair, "--size", "64", "--steps", "2", "3"], 300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("sample:")]
    assert [(row[1], row[2]) for row in rows] == [
        ("content", "2"),
        ("content", "3"),
        ("matched", "2"),
        ("matched", "3"),
    ]
    assert all(float(row[4]) > 0 for row in rows)  # a style distance in every row


def test_the_time_to_quality_benchmark_runs_the_baseline_then_each_variant():
    arguments = ["--pairs", "sample:chelsea:sample:mosaic", "--size", "64", "--iterations", "4"]
    result = run_benchmark("basic_time_to_quality.py", [*arguments, "--every", "2"], 300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("sample:")]
    # The bf16 variants run by default only where bf16 is native (emulated, it is far slower).
    bf16 = ["bf16", "bf16+scales+matched"] if runs_natively("bf16", torch_device("auto")) else []
    variants = ["matched", "scales", "scales+matched", *bf16]
    assert [row[1] for row in rows] == ["baseline", *variants]
    assert rows[0][3] == "1.00" and float(rows[0][4]) > 0  # the target's style distance
    assert result.stdout.count("mean ratio") == len(variants)


@pytest.mark.slow
def test_the_augmentation_experiment_runs_end_to_end_on_a_tiny_subset(tmp_path):
    """benchmarks/augment_pacs.py on 7 images per split, a tiny arbitrary checkpoint and a
    fitted distribution: it prints both arms for every test domain and writes the plot."""
    from conftest import pattern, tiny_arbitrary_checkpoint

    from nst.image import save_image

    checkpoint = tiny_arbitrary_checkpoint(tmp_path / "tiny.ckpt")
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    for index in range(3):
        save_image(pattern(32, 32, seed=index), paintings / f"p{index}.png")
    arguments = ["--model", str(checkpoint), "--paintings", str(paintings), "--limit", "7"]
    arguments += ["--seeds", "2", "--size", "32", "--plot", str(tmp_path / "plot.png")]
    result = run_benchmark("augment_pacs.py", arguments, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for row in ("(a) usual", "(b) usual + StyleAugment", "(b) − (a), points"):
        assert row in result.stdout
    assert all(domain in result.stdout for domain in ("painting", "cartoon", "sketch"))
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_the_zoo_benchmark_scores_a_model_and_the_basic_method_beside_it():
    arguments = ["wave", "--count", "1", "--size", "32", "--basic", "1", "--basic-iterations", "2"]
    result = run_benchmark("zoo_quality.py", arguments, 300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    model = [row for row in rows if row[0] == "wave" and len(row) == 4]
    basic = [row for row in rows if row[:2] == ["basic,", "2"]]
    assert len(model) == 1 and len(basic) == 1 and basic[0][3] == "wave"
    first_table = next(row for row in rows if row[0] == "wave")  # style, content, SSIM
    assert model[0][1:] == first_table[1:4]  # the same photo, the same numbers
    assert all(float(value) > 0 for value in basic[0][4:])
