"""Stress benchmark: do multi-process and two-node runs always exit?

Runs, one after another, 2-process CPU training runs (`accelerate launch --multi_gpu`
with ACCELERATE_USE_CPU=1), 2-process generation runs, and two-"node" training runs on
loopback (one process per node, `--num_machines 2 --rdzv_backend static`), half of them
with the CPU loaded by another job. For each run it prints the wall time and the time
from the last "Done" line to the exit of the last process. A run that has not exited
`--hang-after` seconds after it finished its work is a hang: every rank's Python stack
is dumped with py-spy (`pip install py-spy`) into the report folder, then the run's
process group is killed.

    python benchmarks/bench_multiprocess_exit.py --train 20 --generate 20 --two-node 10

Not part of the test suite's time budget (about 15-25 minutes on 2 cores for the full count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "training" / "train_ddpm.py"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_args(num_machines: int, num_processes: int, machine_rank: int, port: int) -> list[str]:
    args = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", str(num_machines), "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
    if num_machines > 1:
        args += ["--machine_rank", str(machine_rank), "--rdzv_backend", "static", "--same_network"]
    return args


def train_args(data: Path, out: Path, extra: list[str]) -> list[str]:
    return [str(TRAIN), "--dataset_name", str(data), "--output_dir", str(out), "--preset", "tiny",
            "--resolution", "32x64", "--train_batch_size", "2", "--max_train_steps", "6", "--checkpointing_steps", "3",
            "--validation_steps", "6", "--num_validation_images", "1", "--validation_inference_steps", "2",
            "--lr_warmup_steps", "1", "--report_to", "none", "--mixed_precision", "no", *extra]


def children(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def dump_stacks(pids: list[int], path: Path) -> None:
    with open(path, "w") as f:
        for pid in pids:
            f.write(f"===== pid {pid}\n")
            f.flush()
            # --native shows the C++ frames (a join, a GIL wait) where Python's stop.
            subprocess.run([PY_SPY, "dump", "--native", "--pid", str(pid)], stdout=f, stderr=subprocess.STDOUT,
                           timeout=60)


def run_one(kind: str, commands: list[list[str]], env: dict, report: Path, name: str, hang_after: float,
            limit: float) -> dict:
    """Start the commands (one per node), wait for all to exit; dump stacks on a hang."""
    start = time.time()
    logs = [open(report / f"{name}.node{i}.log", "w") for i in range(len(commands))]
    procs = [subprocess.Popen(c, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
             for c, f in zip(commands, logs)]
    done_at, hung = None, False
    while any(p.poll() is None for p in procs):
        time.sleep(0.2)
        now = time.time()
        if done_at is None:
            text = "".join((report / f"{name}.node{i}.log").read_text(errors="replace") for i in range(len(commands)))
            if "Done:" in text or "synthetic images" in text:
                done_at = now
        if (done_at is not None and now - done_at > hang_after) or now - start > limit:
            hung = True
            pids = [q for p in procs if p.poll() is None for q in [p.pid, *children(p.pid)]]
            dump_stacks(pids, report / f"{name}.stacks.txt")
            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
    for p in procs:
        p.wait()
    for f in logs:
        f.close()
    end = time.time()
    return {"run": name, "kind": kind, "wall_s": round(end - start, 2),
            "exit_after_done_s": None if done_at is None else round(end - done_at, 2),
            "returncodes": [p.returncode for p in procs], "hung": hung}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=20, help="2-process training runs")
    p.add_argument("--generate", type=int, default=20, help="2-process generation runs")
    p.add_argument("--two-node", type=int, default=10, help="two-node (loopback) training runs")
    p.add_argument("--hang-after", type=float, default=60.0, help="seconds after 'Done' that count as a hang")
    p.add_argument("--limit", type=float, default=600.0, help="seconds after which any run counts as a hang")
    p.add_argument("--report", default=None, help="folder for logs and stack dumps (default: a temp folder)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-exit-"))
    report = Path(args.report or work / "report")
    report.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    data, model = work / "phantom", work / "model"
    subprocess.run([sys.executable, "-m", "medicraft_hf.cli", "phantom", "--out", str(data), "--num-patients", "8",
                    "--size", "32x64"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(TRAIN), *train_args(data, model, [])[1:], "--max_train_steps", "2"],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    plan = [("train", i) for i in range(args.train)] + [("generate", i) for i in range(args.generate)] + \
           [("two-node", i) for i in range(args.two_node)]
    results = []
    for kind, i in plan:
        loaded = i % 2 == 1  # every other run with the CPU busy
        load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
        port, out, name = free_port(), work / f"{kind}-{i}", f"{kind}-{i}"
        extra = ["--use_ema"] if i % 2 == 0 else []
        if kind == "train":
            cmds = [launch_args(1, 2, 0, port) + train_args(data, out, extra)]
        elif kind == "two-node":
            cmds = [launch_args(2, 2, r, port) + train_args(data, out, extra) for r in (0, 1)]
        else:
            cmds = [launch_args(1, 2, 0, port) + ["-m", "medicraft_hf.generate", "--model", str(model), "--out",
                                                  str(out), "--per-class", "3", "--steps", "2", "--batch-size", "2"]]
        try:
            result = run_one(kind, cmds, env, report, name, args.hang_after, args.limit)
        finally:
            if load is not None:
                load.kill()
                load.wait()
        result["cpu_loaded"] = loaded
        results.append(result)
        print(json.dumps(result), flush=True)
        shutil.rmtree(out, ignore_errors=True)

    hangs = [r["run"] for r in results if r["hung"]]
    failed = [r["run"] for r in results if not r["hung"] and any(rc != 0 for rc in r["returncodes"])]
    for kind in ("train", "generate", "two-node"):
        times = sorted(r["exit_after_done_s"] for r in results if r["kind"] == kind and r["exit_after_done_s"] is not None)
        if times:
            print(f"{kind}: {len(times)} runs; exit after done: median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s")
    print(f"hangs: {len(hangs)} {hangs}; failed: {len(failed)} {failed}; report: {report}")
    (report / "results.json").write_text(json.dumps(results, indent=1))
    return 1 if hangs or failed else 0


if __name__ == "__main__":
    sys.exit(main())
