#!/usr/bin/python3
# Streaming word-count reducer: reads "word<TAB>count" lines sorted by word and prints
# "word<TAB>total" once per word.
import sys

out = sys.stdout.buffer
current = None
total = 0
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    word, _, count = line.partition(b"\t")
    if word != current:
        if current is not None:
            out.write(current + b"\t" + str(total).encode() + b"\n")
        current = word
        total = 0
    total += int(count)
if current is not None:
    out.write(current + b"\t" + str(total).encode() + b"\n")
