#!/usr/bin/python3
# Streaming word-count mapper: for every whitespace-separated word of every input line, prints
# "word<TAB>1". Works on bytes, so any input encoding passes through unchanged.
import sys

out = sys.stdout.buffer
for line in sys.stdin.buffer:
    for word in line.split():
        out.write(word + b"\t1\n")
