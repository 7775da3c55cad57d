#!/usr/bin/env python3
"""fake_printer.py - a stand-in for a raw TCP label printer (port 9100 style).

    fake_printer.py OUTDIR [PORT]

Listens on 127.0.0.1:PORT (0 or none: any free port), writes "PORT\\n" to
OUTDIR/ready once it listens, and stores what each connection sends, whole,
in OUTDIR/label-N.zpl (N = 1, 2, ... in the order the senders finished),
before it closes the connection.
Runs until killed.  Used by tests/integration/ident.sh and the README tour.
"""
import os
import socket
import sys
import threading


def serve(conn, outdir, counter, lock):
    """Keep what one connection sent, then close it: a sender that waits
    for the close knows the label is stored."""
    chunks = []
    with conn:
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except OSError:
            pass
        with lock:
            counter[0] += 1
            n = counter[0]
            tmp = os.path.join(outdir, ".label-%d.tmp" % n)
            with open(tmp, "wb") as f:
                f.write(b"".join(chunks))
            os.rename(tmp, os.path.join(outdir, "label-%d.zpl" % n))


def main():
    outdir = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(outdir, exist_ok=True)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    with open(os.path.join(outdir, "ready.tmp"), "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(os.path.join(outdir, "ready.tmp"), os.path.join(outdir, "ready"))
    print("fake printer listening on 127.0.0.1:%d, labels in %s/" % (srv.getsockname()[1], outdir), flush=True)
    counter, lock = [0], threading.Lock()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, outdir, counter, lock), daemon=True).start()


if __name__ == "__main__":
    main()
