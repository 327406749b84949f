#!/usr/bin/python3
# Runs a command on a pseudo-terminal, as if typed in a terminal window, for the tests of zmr's
# live progress display (tests/integration/progress_test.cc).
#
#   pty_run.py [--cols N] [--rows N] [--timeout S] [--interrupt-after TEXT] -- COMMAND [ARG...]
#
# The command gets a new session whose controlling terminal is the pty (stdin, stdout and stderr
# all on it), with the window size given. Everything it writes is copied, byte for byte, to this
# script's stdout. With --interrupt-after, once TEXT has appeared in the output, ^C is typed once
# (the terminal turns it into SIGINT for the command). The script exits with the command's exit
# code (128+N if signal N ended it); if the command is still running after --timeout seconds it
# is killed (SIGKILL, its whole process group) and the script exits 124 with a note on stderr.
import argparse
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=100.0)
    parser.add_argument("--interrupt-after", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    master, slave = os.openpty()
    # The window size is set before the command starts, so its first look at it is right.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", args.rows, args.cols, 0, 0))

    def become_terminal_owner():
        # A new session, with the pty as its controlling terminal: ^C reaches the command.
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                             preexec_fn=become_terminal_owner, close_fds=True)
    os.close(slave)

    out = sys.stdout.buffer
    seen = b""
    interrupt = args.interrupt_after.encode() if args.interrupt_after else None
    deadline = time.monotonic() + args.timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([master], [], [], min(left, 0.2))
        if not ready:
            if child.poll() is not None:
                # Exited; a last read below takes what is still buffered.
                ready = [master]
            else:
                continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every holder of the pty's other end closed it
            data = b""
        if not data:
            if child.poll() is not None:
                break
            time.sleep(0.05)  # the command closed its end but still runs
            continue
        out.write(data)
        out.flush()
        if interrupt is not None:
            seen += data
            if interrupt in seen:
                os.write(master, b"\x03")
                interrupt = None
                seen = b""

    if timed_out:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
        sys.stderr.write("pty_run.py: killed %s after %.0f s\n" % (command[0], args.timeout))
        os.close(master)
        return 124
    code = child.wait()
    os.close(master)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
