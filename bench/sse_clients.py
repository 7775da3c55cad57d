#!/usr/bin/env python3
"""sse_clients.py - browsers for bench/web.sh: N Server-Sent Events clients
on URL/events, all reading except the last STUCK ones, which connect with a
4 KB receive buffer and never read (a hung tab).  Runs until SIGTERM, then
prints one line: clients, stuck, bytes read in all, snapshots seen, and
the CPU time the clients took (they share the cores with the station here).

    bench/sse_clients.py URL N STUCK
"""
import resource
import signal
import socket
import sys
import threading
from urllib.parse import urlsplit

url, n, stuck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parts = urlsplit(url)
host, port = parts.hostname, parts.port
request = f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
totals = {"bytes": 0, "snapshots": 0}
lock = threading.Lock()
stop = threading.Event()


def reader():
    s = socket.create_connection((host, port))
    s.sendall(request)
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        with lock:
            totals["bytes"] += len(data)
            totals["snapshots"] += data.count(b'"event":"snapshot"')


def hung():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(request)
    stop.wait()
    s.close()


threads = [threading.Thread(target=reader if i < n - stuck else hung, daemon=True) for i in range(n)]
for t in threads:
    t.start()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(f"{n} clients, {stuck} stuck, {totals['bytes']} bytes read, {totals['snapshots']} snapshots, "
      f"clients' CPU {cpu.ru_utime + cpu.ru_stime:.2f} s", flush=True)
