#!/usr/bin/python3
# Streaming mapper that reads one line and then dies of SIGSEGV, as a crashing native extension
# would.
import os
import signal
import sys

sys.stdin.buffer.readline()
sys.stderr.write("about to crash\n")
sys.stderr.flush()
os.kill(os.getpid(), signal.SIGSEGV)
