"""Warm bubblewrap sandboxes (bench's SandboxPool): a program runs in a sandbox that ran others
before it, so nothing one program does may reach the next: no process it left, no file it wrote,
no change to the harness that grades the next one."""

from __future__ import annotations

import asyncio


from moa_cli.bench.sandbox import run_program, sandboxes


def in_one_pool(programs: list[str], size: int = 1, **limits):
    """Run the programs one after another in a pool of `size` sandboxes: (runs, sandboxes started)."""
    async def run_all():
        async with sandboxes(size) as pool:
            runs = [await run_program(program, **limits) for program in programs]
        return runs, pool.started

    return asyncio.run(asyncio.wait_for(run_all(), 120))


LITTER = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '60'])
    os._exit(0)
for directory in ('.', '/tmp', '/dev/shm'):
    with open(os.path.join(directory, 'left-behind'), 'w') as handle:
        handle.write('x')
    os.makedirs(os.path.join(directory, 'a', 'b'), exist_ok=True)
time.sleep(0.2)
"""

CLEAN = """
import os
others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid(), os.getppid())]
assert others == [], others
for directory in ('.', '/tmp', '/dev/shm'):  # (/tmp may hold the mount points of a venv under /tmp)
    left = {'left-behind', 'a'} & set(os.listdir(directory))
    assert not left, (directory, left)
"""


def test_what_a_program_leaves_is_gone_before_the_next_one_runs(bwrap):
    runs, started = in_one_pool([LITTER, CLEAN])
    assert started == 1  # the same sandbox ran both
    assert [r.status for r in runs] == ["passed", "passed"], runs


HARNESS_OUT_OF_REACH = """
import ctypes, os
harness = os.getppid()
reached = []
for path in (f'/proc/{harness}/mem', f'/proc/{harness}/environ', f'/proc/{harness}/fd/0'):
    try:
        open(path, 'rb').close()
        reached.append(path)
    except OSError:
        pass
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, harness, None, None) == 0:  # PTRACE_ATTACH
    reached.append('ptrace')
assert reached == [], reached
"""


def test_a_program_that_changes_what_was_there_before_it_gets_its_sandbox_replaced(bwrap):
    # What bwrap made (here the working directory, made read-only) cannot be told back from what
    # a program did to it: the next program runs in a new sandbox, and can write there again.
    changes = "import os\nos.chmod('/sandbox', 0o500)\n"
    runs, started = in_one_pool([changes, "open('ok', 'w').write('x')\n"])
    assert [r.status for r in runs] == ["passed", "passed"], runs
    assert started == 2


def test_a_program_that_leaves_a_shared_memory_segment_gets_its_sandbox_replaced(bwrap):
    leaves = "import ctypes\nassert ctypes.CDLL(None).shmget(0, 4096, 0o1600) >= 0\n"  # IPC_PRIVATE | IPC_CREAT
    sees_none = "assert open('/proc/sysvipc/shm').read().count('\\n') == 1\n"
    runs, started = in_one_pool([leaves, sees_none])
    assert [r.status for r in runs] == ["passed", "passed"], runs
    assert started == 2


def test_a_program_cannot_trace_or_read_the_harness_that_runs_the_next(bwrap):
    runs, _ = in_one_pool([HARNESS_OUT_OF_REACH])
    assert runs[0].status == "passed", runs[0]


def test_a_program_that_kills_its_sandbox_fails_and_the_next_runs_in_a_new_one(bwrap):
    runs, started = in_one_pool(["import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
                                 "assert 1 + 1 == 2\n"])
    assert [r.status for r in runs] == ["failed", "passed"], runs
    assert started == 2


def test_a_program_that_times_out_is_replaced_and_the_next_passes(bwrap):
    runs, started = in_one_pool(["import time\ntime.sleep(30)\n", "assert 1 + 1 == 2\n"], time_limit=1.0)
    assert [r.status for r in runs] == ["timeout", "passed"], runs
    assert started == 2


def test_many_programs_side_by_side_share_a_few_sandboxes(bwrap):
    async def run_all():
        async with sandboxes(2) as pool:
            runs = await asyncio.gather(*(run_program(f"assert {i} + 1 == {i + 1}\n") for i in range(12)),
                                        run_program("assert False\n"))
        return runs, pool.started

    runs, started = asyncio.run(asyncio.wait_for(run_all(), 120))
    assert [r.status for r in runs] == ["passed"] * 12 + ["failed"]
    assert started <= 2
