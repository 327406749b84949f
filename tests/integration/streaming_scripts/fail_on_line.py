#!/usr/bin/python3
# Streaming mapper that echoes each line as "line<TAB>1" until it reads the line given as its
# first argument (default "FAIL"); then it reports the bad record on stderr and exits with status 1.
import sys

bad = (sys.argv[1] if len(sys.argv) > 1 else "FAIL").encode()
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    if line == bad:
        out.flush()
        sys.stderr.write("bad record: %s\n" % line.decode(errors="replace"))
        sys.exit(1)
    out.write(line + b"\t1\n")
