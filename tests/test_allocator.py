import subprocess
import sys

import pytest
from conftest import script_env

# Fills a fresh 64 MiB tensor four times inside `reused_memory()` and four times after it (after
# twelve warm-up ones, since PyTorch's aligned blocks may not fit the first holes the heap has);
# prints the page faults of each four.
REPEATED_ALLOCATION_FAULTS = """
import resource
import torch
from nst.allocator import reused_memory

def faults_of_four():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        torch.empty(16 * 2**20).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

with reused_memory():
    for _ in range(3):
        faults_of_four()
    inside = faults_of_four()
print(inside, faults_of_four())
"""


def repeated_allocation_faults(**env: str) -> tuple[int, int]:
    environment = {
        name: value for name, value in script_env().items() if not name.startswith("MALLOC_")
    }
    result = subprocess.run(
        [sys.executable, "-c", REPEATED_ALLOCATION_FAULTS],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    inside, after = result.stdout.split()[-2:]
    return int(inside), int(after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_reused_memory_keeps_freed_tensor_pages_inside_the_block_only():
    # 64 MiB is 16,384 pages of 4 KiB: mapped afresh each time unless malloc keeps them.
    inside, after = repeated_allocation_faults()
    assert inside < 2000
    assert after > 16_000  # glibc's defaults are back: blocks are mapped afresh again
    # A user's own malloc settings are left alone, inside the block too.
    inside, _ = repeated_allocation_faults(MALLOC_ARENA_MAX="4")
    assert inside > 4 * 16_000
