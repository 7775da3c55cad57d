#!/usr/bin/env python3
"""fake_scanner.py - a stand-in for a serial barcode scanner: a
pseudo-terminal that types codes.

    fake_scanner.py DIR

Opens a pty, writes its path (what espline's scan.from takes) to DIR/ready,
then types every line appended to DIR/codes (create it, then append with
echo CODE >> DIR/codes), each followed by CR LF as a scanner does, in order.
Runs until killed.  Used by tests/integration/ident.sh.
"""
import os
import sys
import time
import tty


def main():
    d = sys.argv[1]
    master, slave = os.openpty()
    tty.setraw(slave)
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write(os.ttyname(slave) + "\n")
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    codes = os.path.join(d, "codes")
    done = 0
    while True:
        try:
            with open(codes, "rb") as f:
                f.seek(done)
                data = f.read()
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n")
        if end >= 0:
            for line in data[: end + 1].splitlines():
                os.write(master, line + b"\r\n")
                time.sleep(0.02)  # a scanner types a code at a time
            done += end + 1
        time.sleep(0.02)


if __name__ == "__main__":
    main()
