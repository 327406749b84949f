#!/usr/bin/python3
# Streaming reducer for cancellation tests. The reduce partitions named as arguments behave like
# wordcount_reducer.py (sum the counts of each word of sorted "word<TAB>count" lines) and finish;
# every other partition (mapreduce_task_partition, set by the worker) reads its input and then
# sleeps until it is killed, so its job stays in the reduce phase with some part files committed.
import os
import sys
import time

fast = set(sys.argv[1:])
lines = sys.stdin.buffer.read().split(b"\n")
if os.environ.get("mapreduce_task_partition") not in fast:
    while True:
        time.sleep(3600)
out = sys.stdout.buffer
current = None
total = 0
for line in lines:
    if not line:
        continue
    word, _, count = line.partition(b"\t")
    if word != current:
        if current is not None:
            out.write(current + b"\t" + str(total).encode() + b"\n")
        current = word
        total = 0
    total += int(count)
if current is not None:
    out.write(current + b"\t" + str(total).encode() + b"\n")
