#!/usr/bin/python3
"""A zmr client written from PROTOCOL.md alone (pyzmq + msgpack, no zmr code): submits a wordcount
job, follows its events and checks what the protocol promises about them.

usage: protocol_client.py CLIENTS_ENDPOINT INPUT_DIR OUTPUT_DIR

Steps: hello (learn the events endpoint), subscribe to "job/" and "cluster/", wait for a
cluster/heartbeat (the subscription is live), submit, collect the job's events until a terminal
job_state, check them, ask for status once more and print a summary.
Exit status: 0 when every check holds, 1 with a message on stderr otherwise, 2 on bad usage,
3 when the job stopped making progress (no event for 30 s)."""

import os
import sys
import time

import msgpack
import zmq

PROTO = 1
REPLY_TIMEOUT_MS = 10000     # one request/reply round trip
HEARTBEAT_PATIENCE_S = 60    # until the first cluster/heartbeat arrives
JOB_PATIENCE_S = 180         # until the job's terminal job_state arrives
STALL_S = 30                 # no event of the job for this long: it stalled (running attempts
                             # report progress every 0.5 s)
EXIT_STALLED = 3             # the job stalled (a known worker bug: see job_test.cc)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
EXPECTED_STATES = ["SUBMITTED", "MAPPING", "REDUCING", "COMPLETED"]


class CheckFailed(Exception):
    pass


class Stalled(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def endpoint_host(endpoint):
    rest = endpoint.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[: rest.index("]") + 1]
    return rest.rsplit(":", 1)[0]


def resolve_events(events, coordinator):
    """A wildcard host in the announced events endpoint means 'the address you used for me'."""
    host = endpoint_host(events)
    if host not in ("*", "0.0.0.0", "[::]", "::"):
        return events
    scheme, rest = events.split("://", 1)
    return "%s://%s%s" % (scheme, endpoint_host(coordinator), rest[len(host):])


def input_files(root):
    """Regular files below root, skipping names starting with '.' or '_', sorted, absolute."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        for name in filenames:
            if not name.startswith((".", "_")):
                files.append(os.path.abspath(os.path.join(dirpath, name)))
    return sorted(files, key=lambda p: p.encode())


class Client:
    def __init__(self, context, endpoint):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def call(self, request):
        request = dict(request, proto=PROTO)
        self.socket.send(msgpack.packb(request, use_bin_type=True))
        if not self.socket.poll(REPLY_TIMEOUT_MS):
            raise CheckFailed("no reply to %r within %d ms" % (request["type"], REPLY_TIMEOUT_MS))
        frames = self.socket.recv_multipart()
        check(len(frames) == 1, "a DEALER reply must be one frame, got %d" % len(frames))
        reply = msgpack.unpackb(frames[0], raw=False)
        check(isinstance(reply, dict), "reply is not a map: %r" % (reply,))
        check(isinstance(reply.get("type"), str), "reply without a string type: %r" % (reply,))
        if reply["type"] == "error":
            raise CheckFailed("%s refused: %s (%s)" % (request["type"], reply.get("error"),
                                                       reply.get("code")))
        return reply


def receive_event(sub, timeout_ms):
    """One (topic, body) event, or None when nothing came within timeout_ms."""
    if not sub.poll(timeout_ms):
        return None
    frames = sub.recv_multipart()
    check(len(frames) == 2, "an event must have 2 frames, got %d" % len(frames))
    topic = frames[0].decode("utf-8")
    body = msgpack.unpackb(frames[1], raw=False)
    check(isinstance(body, dict), "event body on %s is not a map: %r" % (topic, body))
    check(isinstance(body.get("type"), str), "event on %s without a string type" % topic)
    check(isinstance(body.get("ts_ms"), int) and body["ts_ms"] > 0,
          "event on %s without an integer ts_ms: %r" % (topic, body))
    return topic, body


def run(clients_endpoint, input_dir, output_dir):
    context = zmq.Context()
    try:
        client = Client(context, clients_endpoint)
        hello = client.call({"type": "hello"})
        check(hello["type"] == "hello", "expected a hello reply, got %r" % hello["type"])
        check(hello.get("proto") == PROTO, "coordinator speaks protocol %r" % hello.get("proto"))
        check(isinstance(hello.get("events"), str) and hello["events"],
              "hello reply without an events endpoint")
        events_endpoint = resolve_events(hello["events"], clients_endpoint)

        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(events_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"job/")
        sub.setsockopt(zmq.SUBSCRIBE, b"cluster/")

        # A heartbeat proves the subscription is live, so no event of our job can be missed.
        deadline = time.monotonic() + HEARTBEAT_PATIENCE_S
        heartbeats = 0
        while heartbeats == 0:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            check(remaining_ms > 0, "no cluster/heartbeat on %s within %d s" %
                  (events_endpoint, HEARTBEAT_PATIENCE_S))
            event = receive_event(sub, min(remaining_ms, 500))
            if event and event[0] == "cluster/heartbeat":
                check(event[1]["type"] == "heartbeat", "cluster/heartbeat of type %r" %
                      event[1]["type"])
                check(isinstance(event[1].get("workers"), int), "heartbeat without workers")
                heartbeats += 1

        inputs = input_files(input_dir)
        check(inputs, "no input files under %s" % input_dir)
        submitted = client.call({"type": "submit", "app": "wordcount", "inputs": inputs,
                                 "output": os.path.abspath(output_dir), "params": {},
                                 "maps": 4, "reduces": 2, "name": "protocol-client"})
        check(submitted["type"] == "submitted", "expected submitted, got %r" % submitted["type"])
        job_id = submitted.get("job_id")
        check(isinstance(job_id, str) and job_id, "submitted without a job_id")
        check(submitted.get("maps") == 4 and submitted.get("reduces") == 2,
              "submitted reply says maps=%r reduces=%r" % (submitted.get("maps"),
                                                            submitted.get("reduces")))

        prefix = "job/%s/" % job_id
        job_events = []
        deadline = time.monotonic() + JOB_PATIENCE_S
        final_state = None
        last_event = time.monotonic()
        while final_state is None:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            check(remaining_ms > 0, "job %s did not end within %d s (%d events seen)" %
                  (job_id, JOB_PATIENCE_S, len(job_events)))
            if time.monotonic() - last_event > STALL_S:
                raise Stalled("job %s: no event for %d s after %d events (last: %r)" %
                              (job_id, STALL_S, len(job_events),
                               job_events[-1] if job_events else None))
            event = receive_event(sub, min(remaining_ms, 500))
            if event is None:
                continue
            topic, body = event
            if topic == "cluster/heartbeat":
                heartbeats += 1
                continue
            if not topic.startswith(prefix):
                continue  # another job's event
            check(topic == prefix + body["type"],
                  "topic %s does not end in the event type %r" % (topic, body["type"]))
            check(body.get("job_id") == job_id, "event on %s has job_id %r" %
                  (topic, body.get("job_id")))
            job_events.append(body)
            last_event = time.monotonic()
            if body["type"] == "job_state" and body.get("state") in TERMINAL:
                final_state = body["state"]

        seqs = [e.get("seq") for e in job_events]
        check(seqs == list(range(1, len(job_events) + 1)),
              "job event seq is not 1,2,3,... without gaps: %r" % seqs)
        states = [e for e in job_events if e["type"] == "job_state"]
        check([e.get("state") for e in states] == EXPECTED_STATES,
              "job_state sequence %r, expected %r" % ([e.get("state") for e in states],
                                                     EXPECTED_STATES))
        previous = ""
        for e in states:
            check(e.get("prev_state") == previous, "job_state %s has prev_state %r, expected %r"
                  % (e.get("state"), e.get("prev_state"), previous))
            previous = e["state"]
        check(job_events[0]["type"] == "job_state" and job_events[0]["state"] == "SUBMITTED",
              "the first job event must be job_state SUBMITTED (seq 1)")
        completed = [e for e in job_events if e["type"] == "task_completed"]
        check(len([e for e in completed if e.get("kind") == "map"]) >= 4,
              "fewer than 4 map task_completed events")
        check(len([e for e in completed if e.get("kind") == "reduce"]) >= 2,
              "fewer than 2 reduce task_completed events")

        status = client.call({"type": "status", "job_id": job_id})
        check(status["type"] == "job", "expected a job reply, got %r" % status["type"])
        job = status.get("job")
        check(isinstance(job, dict), "status reply without a job map")
        check(job.get("state") == "COMPLETED", "status says %r" % job.get("state"))
        check(job.get("last_seq") == len(job_events),
              "status last_seq %r but %d events were seen" % (job.get("last_seq"),
                                                              len(job_events)))
        maps = job.get("maps") or {}
        reduces = job.get("reduces") or {}
        check(maps.get("total") == 4 and maps.get("done") == 4, "maps %r" % maps)
        check(reduces.get("total") == 2 and reduces.get("done") == 2, "reduces %r" % reduces)
        counters = job.get("counters") or {}
        print("job %s %s: %d events (seq 1..%d), %d heartbeats, states %s, "
              "map_input_records=%s reduce_output_records=%s"
              % (job_id, job["state"], len(job_events), len(job_events), heartbeats,
                 " -> ".join(e["state"] for e in states), counters.get("map_input_records"),
                 counters.get("reduce_output_records")))
        return 0
    finally:
        context.destroy(linger=0)


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return run(argv[1], argv[2], argv[3])
    except CheckFailed as e:
        print("protocol_client.py: FAILED: %s" % e, file=sys.stderr)
        return 1
    except Stalled as e:
        print("protocol_client.py: STALLED: %s" % e, file=sys.stderr)
        return EXIT_STALLED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
