#!/usr/bin/python3
"""Submit a job to a zmr coordinator and follow it to the end, printing one line per event.

usage: submit_and_follow.py --coordinator tcp://HOST:5556 --app wordcount --input FILE... \\
                            --output DIR [--reduces R] [--maps M] [--param K=V]... \\
                            [--name NAME] [--timeout-ms N] [--no-progress]

Written from PROTOCOL.md alone, with pyzmq and msgpack (Debian: python3-zmq python3-msgpack):
  1. `hello` on the clients socket (DEALER) learns the events endpoint (PUB);
  2. SUBscribe to "job/" and "cluster/heartbeat" and wait for one heartbeat, so the subscription
     is live and no event of the job can be missed;
  3. `submit` (inputs as absolute paths; a directory becomes its regular, non-hidden files, sorted,
     as `zmr submit` expands it);
  4. print the job's events, checking `seq` for gaps (PUB drops events for slow subscribers), and
     ask `status` about once a second in case the final job_state event is lost.

stdout: `job_id: JOB` first, then one line per event, then one line with the final state.
Exit status: 0 COMPLETED, 1 FAILED, 2 usage error or refused submission, 3 the coordinator did
not answer within --timeout-ms, 4 CANCELLED, 130 interrupted (the job keeps running).
"""

import argparse
import os
import sys
import time

import msgpack
import zmq

PROTO = 1                     # PROTOCOL.md: protocol version 1
STATUS_INTERVAL_S = 1.0       # how often to ask `status` while following
FINAL_DRAIN_S = 1.0           # after `status` says the job ended: wait this long for its last events
TERMINAL = {"COMPLETED": 0, "FAILED": 1, "CANCELLED": 4}  # final state -> exit status
EXIT_REFUSED = 2
EXIT_NO_ANSWER = 3
EXIT_INTERRUPTED = 130
WILDCARD_HOSTS = ("*", "0.0.0.0", "[::]", "::")


class NoAnswer(Exception):
    """The coordinator (or its events socket) did not answer in time."""


class Refused(Exception):
    """The coordinator answered with an `error` reply."""


def endpoint_host(endpoint):
    """The host part of tcp://HOST:PORT (an IPv6 host keeps its brackets)."""
    rest = endpoint.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[: rest.index("]") + 1]
    return rest.rsplit(":", 1)[0]


def resolve_events(events, coordinator):
    """A wildcard host in the announced events endpoint means 'the host you used for me'."""
    host = endpoint_host(events)
    if host not in WILDCARD_HOSTS:
        return events
    scheme, rest = events.split("://", 1)
    return "%s://%s%s" % (scheme, endpoint_host(coordinator), rest[len(host):])


def is_hidden(name):
    """Hadoop's rule, as zmr applies it: names starting with '.' or '_' are never read."""
    return name.startswith((".", "_"))


def expand_inputs(paths):
    """Absolute input paths; a directory becomes its regular non-hidden files, recursively (not
    following directory symlinks), sorted bytewise without duplicates. Paths that do not exist are
    passed on: the coordinator refuses them with its own message."""
    files = []
    for path in paths:
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            files.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if not is_hidden(d)]
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not is_hidden(name) and os.path.isfile(full):
                    files.append(full)
    return sorted(set(files), key=os.fsencode)


class Coordinator:
    """Request/reply over one DEALER socket: one reply per request, in order."""

    def __init__(self, context, endpoint, timeout_ms):
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def call(self, request):
        """Sends `request` and returns the reply map. Raises NoAnswer after timeout_ms, Refused for
        an `error` reply."""
        body = msgpack.packb(dict(request, proto=PROTO), use_bin_type=True)
        try:
            self.socket.send(body, flags=zmq.NOBLOCK)
        except zmq.Again:
            raise NoAnswer("cannot send to %s" % self.endpoint)
        if not self.socket.poll(self.timeout_ms):
            raise NoAnswer("coordinator at %s did not answer %r within %d ms"
                           % (self.endpoint, request["type"], self.timeout_ms))
        frames = self.socket.recv_multipart()
        reply = msgpack.unpackb(frames[-1], raw=False)
        if not isinstance(reply, dict):
            raise Refused("reply to %r is not a map" % request["type"])
        if reply.get("type") == "error":
            raise Refused("%s (%s)" % (reply.get("error"), reply.get("code")))
        return reply


def receive_event(sub, timeout_ms):
    """(topic, body) of one event, or None when nothing (readable) came within timeout_ms."""
    if not sub.poll(timeout_ms):
        return None
    frames = sub.recv_multipart()
    if len(frames) != 2:
        return None
    try:
        body = msgpack.unpackb(frames[1], raw=False)
    except Exception:  # bad bytes on the wire: skip them, as zmr's own components do
        return None
    if not isinstance(body, dict):
        return None
    return frames[0].decode("utf-8", "replace"), body


def clock(ts_ms):
    seconds = (ts_ms or 0) / 1000.0
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + ".%03d" % (int(ts_ms or 0) % 1000)


def describe_event(event):
    """One readable line for a job event."""
    kind = event.get("type", "?")
    line = "%s #%s %s" % (clock(event.get("ts_ms")), event.get("seq"), kind)
    if kind == "job_state":
        line += " " + str(event.get("state"))
        if event.get("prev_state"):
            line += " (was %s)" % event["prev_state"]
        if event.get("error"):
            line += ": " + str(event["error"])
        return line
    if event.get("task_id"):
        line += " %s attempt %s" % (event["task_id"], event.get("attempt"))
        if event.get("worker"):
            line += " on %s" % event["worker"]
    if kind == "task_progress":
        line += " %d%%" % int(100 * float(event.get("progress") or 0))
    elif kind == "task_assigned" and event.get("speculative"):
        line += " (speculative backup)"
    elif kind == "task_completed":
        line += " in %.1f s" % ((event.get("duration_ms") or 0) / 1000.0)
    elif kind == "task_failed":
        line += ": " + str(event.get("error"))
    elif kind == "task_killed":
        line += ": " + str(event.get("reason"))
    elif kind == "task_speculated":
        line += ": backup for attempt %s on %s" % (event.get("original_attempt"),
                                                   event.get("original_worker"))
    elif kind == "worker_blacklisted":
        line += " %s after %s failed attempts" % (event.get("worker"), event.get("failures"))
    return line


def job_status(coordinator, job_id):
    """The JobInfo map from a `status` request (Refused for an unknown job)."""
    job = coordinator.call({"type": "status", "job_id": job_id}).get("job")
    if not isinstance(job, dict):
        raise Refused("status reply without a job")
    return job


def describe_job(job):
    """One line from a JobInfo."""
    maps, reduces = job.get("maps") or {}, job.get("reduces") or {}
    return "status: %s, maps %s/%s done, reduces %s/%s done, last seq %s" % (
        job.get("state"), maps.get("done"), maps.get("total"), reduces.get("done"),
        reduces.get("total"), job.get("last_seq"))


def wait_for_heartbeat(sub, timeout_ms, endpoint):
    """Returns once a cluster/heartbeat arrived: from then on the subscription is live."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise NoAnswer("no cluster/heartbeat on %s within %d ms" % (endpoint, timeout_ms))
        event = receive_event(sub, min(remaining_ms, 200))
        if event and event[0] == "cluster/heartbeat":
            return


def follow(coordinator, sub, job_id, show_progress):
    """Prints the job's events until it ends; returns the final JobInfo."""
    prefix = "job/%s/" % job_id
    last_seq = 0           # highest seq printed
    final = None           # JobInfo once `status` says the job ended
    final_seen_at = None
    next_status = time.monotonic() + STATUS_INTERVAL_S
    while True:
        now = time.monotonic()
        if now >= next_status:
            job = job_status(coordinator, job_id)
            next_status = now + STATUS_INTERVAL_S
            if job.get("state") in TERMINAL and final is None:
                final, final_seen_at = job, now
        if final is not None and (last_seq >= final.get("last_seq", 0)
                                  or now - final_seen_at > FINAL_DRAIN_S):
            if last_seq < final.get("last_seq", 0):
                print("(events %d..%d were lost; the final state comes from status)"
                      % (last_seq + 1, final["last_seq"]))
            return final
        event = receive_event(sub, 100)
        if event is None or not event[0].startswith(prefix):
            continue  # a timeout, or another job's event
        body = event[1]
        seq = body.get("seq")
        if not isinstance(seq, int) or seq <= last_seq:
            continue  # a duplicate
        if seq > last_seq + 1:
            print("(missed events %d..%d; asking status)" % (last_seq + 1, seq - 1))
            print(describe_job(job_status(coordinator, job_id)))
        last_seq = seq
        if body.get("type") != "task_progress" or show_progress:
            print(describe_event(body))
        if body.get("type") == "job_state" and body.get("state") in TERMINAL and final is None:
            # The event is the news; one more status read gives the job's summary.
            final = job_status(coordinator, job_id)
            final_seen_at = time.monotonic()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Submit a zmr job and follow its events until it ends.",
        epilog="exit status: 0 COMPLETED, 1 FAILED, 2 usage error or refused submission, "
               "3 coordinator did not answer, 4 CANCELLED")
    parser.add_argument("--coordinator",
                        default=os.environ.get("ZMR_COORDINATOR", "tcp://127.0.0.1:5556"),
                        help="coordinator client endpoint (default: $ZMR_COORDINATOR, else "
                             "tcp://127.0.0.1:5556)")
    parser.add_argument("--app", required=True, help="wordcount, grep, invertedindex, ...")
    parser.add_argument("--input", required=True, nargs="+", action="extend", metavar="PATH",
                        help="input files or directories (repeatable)")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="output directory: must not exist (or be empty)")
    parser.add_argument("--reduces", type=int, default=1)
    parser.add_argument("--maps", type=int, default=0, help="0: one per 64 MiB")
    parser.add_argument("--param", action="append", default=[], metavar="K=V")
    parser.add_argument("--name", default="")
    parser.add_argument("--timeout-ms", type=int, default=5000,
                        help="how long to wait for each reply (default 5000)")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not print task_progress events")
    args = parser.parse_args(argv)
    args.params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error("--param needs KEY=VALUE, got %r" % item)
        args.params[key] = value
    if args.timeout_ms <= 0:
        parser.error("--timeout-ms must be positive")
    return args


def run(args):
    context = zmq.Context()
    try:
        coordinator = Coordinator(context, args.coordinator, args.timeout_ms)
        hello = coordinator.call({"type": "hello"})
        if not isinstance(hello.get("events"), str) or not hello["events"]:
            raise Refused("hello reply without an events endpoint")
        events = resolve_events(hello["events"], args.coordinator)

        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"job/")
        sub.setsockopt(zmq.SUBSCRIBE, b"cluster/heartbeat")
        sub.connect(events)
        wait_for_heartbeat(sub, args.timeout_ms, events)

        request = {"type": "submit", "app": args.app, "inputs": expand_inputs(args.input),
                   "output": os.path.abspath(args.output), "params": args.params,
                   "maps": args.maps, "reduces": args.reduces}
        if args.name:
            request["name"] = args.name
        try:
            submitted = coordinator.call(request)
        except Refused as e:
            print("submit_and_follow.py: submission refused: %s" % e, file=sys.stderr)
            return EXIT_REFUSED
        job_id = submitted["job_id"]
        print("job_id: %s" % job_id)
        print("submitted: %s maps, %s reduces, output %s"
              % (submitted.get("maps"), submitted.get("reduces"), request["output"]))

        job = follow(coordinator, sub, job_id, not args.no_progress)
        state = job.get("state")
        line = "%s %s in %.1f s" % (state, job_id, (job.get("elapsed_ms") or 0) / 1000.0)
        if state == "FAILED":
            line += ": " + str(job.get("error"))
        elif state == "COMPLETED":
            line += ", output in %s" % job.get("output")
        print(line)
        if state == "FAILED":
            print("submit_and_follow.py: job %s FAILED: %s" % (job_id, job.get("error")),
                  file=sys.stderr)
        return TERMINAL[state]
    except NoAnswer as e:
        print("submit_and_follow.py: %s" % e, file=sys.stderr)
        return EXIT_NO_ANSWER
    except Refused as e:  # hello or status refused (protocol version, unknown job)
        print("submit_and_follow.py: %s" % e, file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("submit_and_follow.py: interrupted (the job keeps running)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        context.destroy(linger=0)


def main(argv):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # one line at a time, also into a pipe
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
