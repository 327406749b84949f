#!/usr/bin/python3
"""The ZeroMQ floor of the coordinator's heartbeat traffic: a bare ROUTER doing only that.

  bench/zmq_floor.py [--workers N] [--idle-s S] [--sim BUILD_DIR]

Binds a ROUTER on a free loopback port, starts zmr-sim-workers (N workers) against it, answers
each `ready` with `welcome` and sends every known worker the coordinator's heartbeat once a second,
as zmr-coordinator does; nothing else (after each batch it rests --rest-ms, as the coordinator
does after a batch of heartbeats). Then prints the CPU of this process's ZeroMQ I/O thread
(and of the Python main thread, which is not comparable to the C++ coordinator's) over S seconds
of idle heartbeating, from /proc/self/task/*/stat. The I/O thread does the same per-message work
(one recv per heartbeat in, one send plus two epoll_ctl per heartbeat out) whatever program
drives the socket, so its figure is what zmr-coordinator's I/O thread cannot go below.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

HZ = os.sysconf("SC_CLK_TCK")


def thread_ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            name = f.read().strip()
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[f"{name}:{tid}"] = int(fields[11]) + int(fields[12])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--idle-s", type=float, default=20)
    ap.add_argument("--rest-ms", type=float, default=10,
                    help="after each batch, leave the socket unread this long (as the coordinator "
                         "does after heartbeats-only batches)")
    ap.add_argument("--sim", default=os.path.join(os.path.dirname(__file__), "..", "build-bench"))
    args = ap.parse_args()
    ctx = zmq.Context(1)
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.SNDHWM, 100000)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    heartbeat = msgpack.packb({"type": "heartbeat", "running": 0})
    log = tempfile.TemporaryFile()
    sim = subprocess.Popen(
        [f"{args.sim}/tests/zmr-sim-workers", "--coordinator", f"tcp://127.0.0.1:{port}",
         "--workers", str(args.workers), "--name-prefix", "floor", "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT)
    known = set()
    welcomed = 0
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    next_beat = time.monotonic() + 1.0
    start = None
    t0 = ticks0 = None
    try:
        while True:
            now = time.monotonic()
            if start is None and welcomed >= args.workers:
                start = now + 2.0  # past the registration burst
            if start is not None and t0 is None and now >= start:
                t0, ticks0 = now, thread_ticks()
            if t0 is not None and now - t0 >= args.idle_s:
                break
            if now >= next_beat:
                for ident in known:
                    router.send_multipart([ident, heartbeat], zmq.DONTWAIT)
                next_beat = now + 1.0
            for _ in poller.poll(max(0, int((next_beat - now) * 1000))):
                while True:
                    try:
                        ident, body = router.recv_multipart(zmq.DONTWAIT)
                    except zmq.Again:
                        break
                    known.add(ident)
                    if body[:20].find(b"ready") >= 0:
                        msg = msgpack.unpackb(body)
                        if msg.get("type") == "ready":
                            router.send_multipart([ident, msgpack.packb(
                                {"type": "welcome", "proto": 1, "worker": msg["name"],
                                 "heartbeat_ms": 1000, "liveness": 3})], zmq.DONTWAIT)
                            welcomed += 1
                if args.rest_ms > 0:
                    time.sleep(args.rest_ms / 1000)
        ticks1, t1 = thread_ticks(), time.monotonic()
        for key in sorted(ticks1):
            pct = 100.0 * (ticks1[key] - ticks0.get(key, 0)) / HZ / (t1 - t0)
            print(f"{key.split(':')[0]}: {pct:.2f}% of a core "
                  f"({args.workers} workers, {t1 - t0:.0f} s, load1 {os.getloadavg()[0]:.2f})")
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        router.close()
        ctx.term()


if __name__ == "__main__":
    sys.exit(main())
