#!/usr/bin/env python3
"""free_ports.py — TCP ports on 127.0.0.1 that were free a moment ago, for
the demo, the tests and the benchmarks (imported, or run: free_ports.py N
prints N of them).

They are picked at random *below* the kernel's ephemeral range: a port from
bind(("127.0.0.1", 0)) comes from that range, which every outgoing connection
draws its source port from too, so under ctest -j a client of another test
could take it before the broker binds it (CI: "Unable to create websockets
listener on port 51723").  All N are held at once while picking, so they are
distinct."""
import random
import socket
import sys


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n=1):
    low = _ephemeral_low()
    socks = []
    try:
        for _ in range(200 * n):
            if len(socks) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", random.randint(max(1024, low - 12000), low - 1)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:  # the range below is full: take what the kernel gives
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


if __name__ == "__main__":
    print(" ".join(str(p) for p in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
