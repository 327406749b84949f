#!/usr/bin/python3
# Streaming word-count mapper with zmr's own word definition (maximal runs of ASCII letters,
# lower-cased): for each word of each input line it prints "word<TAB>1", so its job's output
# equals the built-in wordcount's. When ZMR_TEST_SLOW_MAP_S is set in its environment (which it
# inherits from the worker), it first reads all of its input and then sleeps that many seconds
# before emitting anything: a test starts one worker with the variable set to make it a straggler.
import os
import re
import sys
import time

data = sys.stdin.buffer.read()
delay = os.environ.get("ZMR_TEST_SLOW_MAP_S")
if delay:
    sys.stderr.write("slow_wordcount_mapper: sleeping %s s (%s)\n"
                     % (delay, os.environ.get("mapreduce_task_attempt_id", "?")))
    sys.stderr.flush()
    time.sleep(float(delay))
out = sys.stdout.buffer
for word in re.findall(rb"[A-Za-z]+", data):
    out.write(word.lower() + b"\t1\n")
