#!/usr/bin/python3
# Streaming word-count mapper (zmr's word definition, like slow_wordcount_mapper.py) that holds its
# attempt open until a gate opens: after reading its input it waits until the file named by
# ZMR_TEST_GATE (pass it with --cmdenv) exists, then emits "word<TAB>1" per word. A test sees the
# job's tasks and workers while attempts surely run, then opens the gate; no sleeps to tune.
import os
import re
import sys
import time

data = sys.stdin.buffer.read()
gate = os.environ.get("ZMR_TEST_GATE")
if gate:
    sys.stderr.write("gated_wordcount_mapper: waiting for %s\n" % gate)
    sys.stderr.flush()
    while not os.path.exists(gate):
        time.sleep(0.05)
out = sys.stdout.buffer
for word in re.findall(rb"[A-Za-z]+", data):
    out.write(word.lower() + b"\t1\n")
