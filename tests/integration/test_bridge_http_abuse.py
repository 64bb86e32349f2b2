"""The bridge's HTTP port cannot take the bridge down: 1,100 connections held
open against a bridge whose file descriptor limit is 256 leave its CPU time
and log bounded and its cloud link working (before, accept() failed with
EMFILE in a busy loop: a CPU second per second, a log line per failure, the
cloud reconnect late); and a WebSocket Origin is compared whole, so a long
foreign Origin gets no live data.
"""
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_http import get  # noqa: E402
from test_bridge_relay import BridgeWorld, bridge_conf  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
HELD = 1100
NOFILE = 256

# Opens N connections to 127.0.0.1:PORT without waiting for them, says so,
# and holds them until its stdin closes.
HOLDER = """
import resource, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
held = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    held.append(s)
print("holding %d" % len(held), flush=True)
sys.stdin.read()
"""


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ws_upgrade(port, origin=None, host=None):
    """The status line the bridge answers a WebSocket upgrade of /ws with
    (empty when it closes the connection without one)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        req = ("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               % (host or "127.0.0.1:%d" % port))
        if origin is not None:
            req += "Origin: %s\r\n" % origin
        s.sendall((req + "\r\n").encode())
        head = b""
        try:
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return head.split(b"\r\n")[0].decode(errors="replace")
    finally:
        s.close()


class HttpAbuse(unittest.TestCase):
    def test_held_connections_leave_cpu_log_and_cloud_alone(self):
        with h.Env("br-http-held") as env:
            w = BridgeWorld(env)
            port = h.free_port()
            cfg = env.write("bridge.conf", bridge_conf(w, RULES, "http_listen 127.0.0.1:%d\n" % port))
            b = h.Proc(env, "bridge", ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--",
                                       h.bridge_path(), "-c", cfg])
            w.bridge = b
            self.assertTrue(b.wait_log(r"event=http\.listening.*max_connections=64", 10), b.log())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())

            # The holder is a process of its own: paho's select() cannot take
            # file descriptors above 1024 in this one.
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(port), str(HELD)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.addCleanup(holder.kill)
            self.assertEqual(holder.stdout.readline().strip(), "holding %d" % HELD)
            lines0 = len(b.log().splitlines())
            cpu0, t0 = cpu_seconds(b.pid), time.monotonic()

            # The cloud goes away and comes back while the port is held: the
            # bridge reconnects within its backoff (reconnect_max 1s), not late.
            w.cloud.stop()
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected", 10), b.log()[-3000:])
            time.sleep(2)
            connects = b.log().count("event=cloud.connected")
            w.cloud.start()
            t_up = time.monotonic()
            self.assertTrue(h.wait_for(lambda: b.log().count("event=cloud.connected") > connects,
                                       10), b.log()[-3000:])
            reconnect_s = time.monotonic() - t_up
            sub = w.cloud_subscriber("#", ident="consumer-2")
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/l1/telemetry/t", b"still here", qos=1))
            got = sub.wait_messages(1, 10)
            self.assertTrue(any(m["payload"] == b"still here" for m in sub.messages), got)
            time.sleep(max(0.0, 10 - (time.monotonic() - t0)))

            cpu = cpu_seconds(b.pid) - cpu0
            elapsed = time.monotonic() - t0
            new_lines = b.log().splitlines()[lines0:]
            http_lines = [l for l in new_lines if "event=http." in l]
            h.log("held %d connections for %.1f s: bridge CPU %.2f s, %d new log lines (%d http), "
                  "cloud reconnect %.2f s after it came back"
                  % (HELD, elapsed, cpu, len(new_lines), len(http_lines), reconnect_s))
            self.assertLess(cpu, 0.2 * elapsed, "the bridge spins while the port is held")
            self.assertLess(len(http_lines), 40, "\n".join(http_lines[:20]))
            self.assertLess(reconnect_s, 5, b.log()[-3000:])
            self.assertTrue(b.alive())

            holder.stdin.close()
            holder.wait(10)
            # The port serves again once the holders are gone.
            self.assertTrue(h.wait_for(lambda: get(port, "/healthz")[0] in (200, 503), 20))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_long_foreign_origin_gets_no_websocket(self):
        with h.Env("br-http-origin") as env:
            w = BridgeWorld(env)
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n" % port)
            self.assertTrue(b.wait_log(r"event=http\.listening", 10), b.log())
            same = "http://127.0.0.1:%d" % port
            self.assertIn(" 101 ", ws_upgrade(port, origin=same) + " ")
            self.assertIn(" 101 ", ws_upgrade(port) + " ")  # no Origin: not a browser
            self.assertNotIn(" 101 ", ws_upgrade(port, origin="http://evil.example") + " ")
            # Longer than any buffer the check once copied it into: a
            # truncated (failed) copy was taken for "no Origin" and let in.
            for n in (255, 256, 300, 4000):
                evil = "http://evil.example/" + "a" * n
                self.assertNotIn(" 101 ", ws_upgrade(port, origin=evil) + " ", n)
            # The same origin padded to a long one is still foreign.
            self.assertNotIn(" 101 ", ws_upgrade(port, origin=same + "/" + "b" * 300) + " ")
            # A long Host does not make a long Origin pass either.
            long_host = "h" * 300
            self.assertNotIn(" 101 ", ws_upgrade(port, origin="http://evil.example",
                                                 host=long_host) + " ")
            self.assertIn(" 101 ", ws_upgrade(port, origin="http://" + long_host,
                                              host=long_host) + " ")
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
