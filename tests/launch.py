"""Run multi-process commands from tests so that they can neither hang the suite nor leak.

Each command runs in its own process group (session); past its timeout the whole group is
killed, and after it ends the test fails if any process of the group survived.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: one per rendezvous, never a fixed one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_cpu_launch(num_processes: int = 2, num_machines: int = 1, machine_rank: int = 0,
                          port: int | None = None, config_file=None) -> list[str]:
    """`accelerate launch` over CPU processes (with ACCELERATE_USE_CPU=1), on a fresh port."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file is not None:
        cmd += ["--config_file", str(config_file)]
    else:
        cmd += ["--multi_gpu", "--num_processes", str(num_processes), "--num_machines", str(num_machines),
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(port or free_port())]
    if num_machines > 1:
        cmd += ["--machine_rank", str(machine_rank), "--rdzv_backend", "static", "--same_network"]
    return cmd


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    return alive


def run_group(cmd: list[str], *, env: dict, timeout: float, cwd=None) -> subprocess.CompletedProcess:
    """Run `cmd` in a new process group; kill the group on timeout; fail if a child survives."""
    return run_groups([cmd], env=env, timeout=timeout, cwd=cwd)[0]


def run_groups(cmds: list[list[str]], *, env: dict, timeout: float, cwd=None) -> list[subprocess.CompletedProcess]:
    """Run commands side by side (e.g. one launcher per node), each in its own process group."""
    procs = [subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for cmd in cmds]
    deadline = time.time() + timeout
    outputs, timed_out = [], False
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=max(deadline - time.time(), 0.1)))
        except subprocess.TimeoutExpired:
            timed_out = True
            for other in procs:
                _kill_group(other.pid)
            outputs.append(proc.communicate())
    if timed_out:
        for proc in procs[len(outputs):]:
            outputs.append(proc.communicate())
        logs = "\n".join(f"--- {' '.join(c[:6])}...\nstdout: {o[-2000:]}\nstderr: {e[-4000:]}"
                         for c, (o, e) in zip(cmds, outputs))
        raise AssertionError(f"did not finish in {timeout} s (process groups killed)\n{logs}")
    # The launchers have exited; their workers must have too (a short grace for the kernel to reap them).
    for cmd, proc in zip(cmds, procs):
        grace = time.time() + 5
        while (alive := _group_alive(proc.pid)) and time.time() < grace:
            time.sleep(0.1)
        if alive:
            _kill_group(proc.pid)
            raise AssertionError(f"processes {alive} outlived their launcher ({' '.join(cmd[:6])}...)")
    return [subprocess.CompletedProcess(c, p.returncode, o, e) for c, p, (o, e) in zip(cmds, procs, outputs)]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
