#!/usr/bin/python3
# Streaming mapper that never reads its input and never exits: only killing it ends it.
import time

while True:
    time.sleep(3600)
