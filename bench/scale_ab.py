#!/usr/bin/python3
"""Coordinator CPU at idle with many simulated workers: two builds side by side, alternating.

  bench/scale_ab.py BUILD_A BUILD_B [--workers 1000] [--slots 2] [--idle-s 20] [--rounds 2]
                    [--tasks 0] [--sim BUILD_DIR]

For each round and each build: starts that build's zmr-coordinator (default heartbeat) on free
loopback ports, one zmr-sim-workers (from --sim, default BUILD_B, so both coordinators face the
same load generator), waits until every simulated worker is registered and 2 s more, then reads
the coordinator's CPU (utime+stime from /proc/PID/stat, and per thread from /proc/PID/task/*/stat)
over --idle-s seconds. With --tasks N it then runs a wordcount job of N maps (1 reduce) on a tiny
input and reports the coordinator's CPU and tasks/s during it. Prints one line per run and the
medians per build. Nothing here asserts on speed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")


def ticks(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            out[f"{name}:{tid}"] = ticks(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def one_run(build, sim_build, args, tmp):
    run_dir = tempfile.mkdtemp(dir=tmp)
    ready = os.path.join(run_dir, "ready")
    coord = subprocess.Popen(
        [f"{build}/coordinator/zmr-coordinator", "--workers", "tcp://127.0.0.1:*",
         "--clients", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
         "--ready-file", ready, "--log-level", "warn"],
        stdout=open(os.path.join(run_dir, "coordinator.log"), "w"), stderr=subprocess.STDOUT)
    sim = None
    try:
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        eps = dict(line.split("=", 1) for line in open(ready).read().split())
        report = os.path.join(run_dir, "sim.json")
        sim = subprocess.Popen(
            [f"{sim_build}/tests/zmr-sim-workers", "--coordinator", eps["workers"],
             "--workers", str(args.workers), "--slots", str(args.slots), "--task-ms",
             str(args.task_ms), "--name-prefix", "sim", "--probe-ms", "100", "--report", report,
             "--log-level", "warn"],
            stdout=open(os.path.join(run_dir, "sim.log"), "w"), stderr=subprocess.STDOUT)
        zmr = [f"{build}/client/zmr", "--coordinator", eps["clients"]]
        deadline = time.time() + 120
        while time.time() < deadline:
            out = subprocess.run(zmr + ["workers", "--json"], capture_output=True, text=True)
            if out.returncode == 0 and len(json.loads(out.stdout)) >= args.workers:
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"{build}: workers did not register")
        time.sleep(2)
        la = loadavg()
        c0, th0, t0 = ticks(f"/proc/{coord.pid}/stat"), thread_ticks(coord.pid), time.time()
        time.sleep(args.idle_s)
        c1, th1, t1 = ticks(f"/proc/{coord.pid}/stat"), thread_ticks(coord.pid), time.time()
        idle = 100.0 * (c1 - c0) / HZ / (t1 - t0)
        threads = {k.split(":")[0]: 100.0 * (th1[k] - th0.get(k, 0)) / HZ / (t1 - t0)
                   for k in th1}
        result = {"idle_pct": idle, "threads": threads, "load1": la}
        if args.tasks > 0:
            inp = os.path.join(run_dir, "input.txt")
            with open(inp, "w") as f:
                for i in range(2 * args.tasks):
                    f.write(f"line {i:07d} a b\n")
            c0, t0 = ticks(f"/proc/{coord.pid}/stat"), time.time()
            out = subprocess.run(
                zmr + ["--timeout-ms", "20000", "submit", "--app", "wordcount", "--input", inp,
                       "--output", os.path.join(run_dir, "out"), "--maps", str(args.tasks),
                       "--reduces", "1", "--wait", "--no-progress"],
                capture_output=True, text=True)
            c1, t1 = ticks(f"/proc/{coord.pid}/stat"), time.time()
            if out.returncode != 0:
                raise SystemExit(f"{build}: job failed: {out.stderr[-300:]}")
            result["job_pct"] = 100.0 * (c1 - c0) / HZ / (t1 - t0)
            result["tasks_per_s"] = (args.tasks + 1) / (t1 - t0)
        sim.terminate()
        sim.wait(timeout=30)
        if os.path.exists(report):
            r = json.load(open(report))
            result["gap"] = f'{r["heartbeat_gap_p50_ms"]}/{r["heartbeat_gap_p99_ms"]}'
            result["lost_rereg"] = f'{r["worker_lost_events"]}/{r["reregisters"]}'
            if "probe_rtt_p50_us" in r:
                result["rtt"] = (f'{r["probe_rtt_p50_us"] / 1000:.1f}/'
                                 f'{r["probe_rtt_p99_us"] / 1000:.1f}ms')
        return result
    finally:
        for p in (sim, coord):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--sim")
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--task-ms", type=int, default=20)
    ap.add_argument("--idle-s", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=0)
    args = ap.parse_args()
    sim_build = args.sim or args.builds[-1]
    tmp = tempfile.mkdtemp(prefix="zmr-scale-ab-")
    results = {b: [] for b in args.builds}
    try:
        for rnd in range(args.rounds):
            for b in args.builds:
                r = one_run(b, sim_build, args, tmp)
                results[b].append(r)
                th = " ".join(f"{k}={v:.1f}" for k, v in sorted(r["threads"].items()) if v > 0)
                extra = ""
                if "job_pct" in r:
                    extra = f' job_cpu={r["job_pct"]:.1f}% tasks/s={r["tasks_per_s"]:.0f}'
                print(f'round {rnd + 1} {b}: idle={r["idle_pct"]:.2f}% [{th}] load1={r["load1"]}'
                      f'{extra} gap={r.get("gap")} rtt={r.get("rtt")} '
                      f'lost/rereg={r.get("lost_rereg")}', flush=True)
        for b in args.builds:
            rs = results[b]
            line = f"median {b}: idle={statistics.median(r['idle_pct'] for r in rs):.2f}%"
            if args.tasks > 0:
                line += (f" job_cpu={statistics.median(r['job_pct'] for r in rs):.1f}%"
                         f" tasks/s={statistics.median(r['tasks_per_s'] for r in rs):.0f}")
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
