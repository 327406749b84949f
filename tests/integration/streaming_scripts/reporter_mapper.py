#!/usr/bin/python3
# Streaming mapper that uses the stderr reporter protocol: a status line at start and end, one
# "reporter:counter:Records,Seen,1" per line, a final "Records,Chars" counter, and one ordinary
# log line. Each input line is echoed as "line<TAB>1".
import sys

err = sys.stderr
err.write("reporter:status:starting\n")
n = 0
chars = 0
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    n += 1
    chars += len(line)
    err.write("reporter:counter:Records,Seen,1\n")
    sys.stdout.buffer.write(line + b"\t1\n")
err.write("reporter:counter:Records,Chars,%d\n" % chars)
err.write("reporter_mapper: processed %d lines\n" % n)
err.write("reporter:status:done\n")
