#!/usr/bin/python3
"""The Dask peer of bench/run.sh: a word count with dask.bag and no-op task throughput, each on a
2-process LocalCluster (1 thread per worker, like zmr's 2 workers x 1 slot).

  dask_peer.py wordcount --repeats R --out FILE FILE...
  dask_peer.py noop --repeats R N...

Prints one JSON object on stdout: {"startup_s": ..., "runs_s": [...]} for wordcount, and
{"startup_s": ..., "runs": {"N": [seconds, ...], ...}} for noop. The cluster's start-up is timed
separately and not part of any run (zmr's cluster is also up before its jobs are timed). The word
count writes "word\\tcount" lines of its last run to FILE, unsorted (bench/run.sh normalises them,
untimed). Words are str.split() tokens: the generated text is lower-case ASCII words separated by
single spaces, where that equals zmr's maximal runs of ASCII letters.

Needs Debian's python3-distributed (run with /usr/bin/python3).
"""
import argparse
import json
import sys
import time


def noop(x):
    return x


def start_cluster():
    # Imported here so that --help works without Dask.
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster)
    client.wait_for_workers(2)
    return cluster, client, time.perf_counter() - t0


def wordcount(args):
    import dask.bag as db

    cluster, client, startup = start_cluster()
    runs = []
    counts = None
    try:
        # A tiny untimed warm-up, so that the first timed run does not pay for imports and for
        # shipping the functions to the workers.
        db.from_sequence(["warm up"], npartitions=1).str.split().flatten().frequencies().compute()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bag = db.read_text(args.files, blocksize=args.blocksize)
            counts = bag.str.split().flatten().frequencies().compute()
            runs.append(time.perf_counter() - t0)
    finally:
        client.close()
        cluster.close()
    with open(args.out, "w", encoding="ascii") as f:
        for word, n in counts:
            f.write(f"{word}\t{n}\n")
    return {"startup_s": startup, "runs_s": runs}


def noop_tasks(args):
    cluster, client, startup = start_cluster()
    runs = {}
    try:
        # One small warm-up batch so that the first timed run does not pay for imports.
        client.gather(client.map(noop, range(10), pure=False))
        for n in args.counts:
            runs[str(n)] = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                futures = client.map(noop, range(n), pure=False)
                results = client.gather(futures)
                runs[str(n)].append(time.perf_counter() - t0)
                if len(results) != n:
                    raise SystemExit(f"dask_peer: {len(results)} results of {n} tasks")
                del futures
    finally:
        client.close()
        cluster.close()
    return {"startup_s": startup, "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wc = sub.add_parser("wordcount")
    wc.add_argument("--repeats", type=int, default=1)
    wc.add_argument("--out", required=True)
    wc.add_argument("--blocksize", default="32MiB")
    wc.add_argument("files", nargs="+")
    nt = sub.add_parser("noop")
    nt.add_argument("--repeats", type=int, default=1)
    nt.add_argument("counts", type=int, nargs="+")
    args = parser.parse_args()
    result = wordcount(args) if args.command == "wordcount" else noop_tasks(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
