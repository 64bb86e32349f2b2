"""One message can never block the queue (issue 12, item 1).

The cloud endpoint here (a small MQTT 5 server over mutual TLS, written in
this file like the one of test_bridge_stall.py) closes the connection
whenever it receives a PUBLISH whose topic contains "poison" -- as AWS IoT
does for a topic deeper than it allows -- and acknowledges everything else.
Without a dead-letter rule the bridge resends that message first after every
reconnect, forever, and nothing behind it is delivered.

The bridge must: after dead_letter_after (5) drops in a row with that message
the oldest unacknowledged, move it to the dead-letter table of the queue file,
log cloud.dead_letter (seq, topic, reason, the commands to inspect and
replay) and count it; then deliver the 50 messages behind it promptly.  The
operator commands list and show it while the bridge runs, replay it (bridge
stopped) under a new seq, and purge."""
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402
from test_bridge_stall import read_packet  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


class PoisonCloud(threading.Thread):
    """CONNACK, PINGRESP, PUBACK -- and a closed connection for any PUBLISH
    whose topic contains "poison".  Records delivered payloads and how many
    times the poison came."""

    def __init__(self, pki):
        super().__init__(daemon=True)
        cert, key = pki.server("localhost")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(pki.ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.delivered = []  # (topic, payload) acknowledged
        self.poisoned = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.start()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(60)
        try:
            while not self.stop_ev.is_set():
                p = read_packet(conn)
                if p is None:
                    return
                kind, body = p[0] >> 4, p[1]
                if kind == 1:
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 12:
                    conn.sendall(b"\xd0\x00")
                elif kind == 3:
                    tlen = int.from_bytes(body[0:2], "big")
                    topic = body[2:2 + tlen].decode()
                    pos = 2 + tlen
                    mid = body[pos:pos + 2]
                    pos += 2
                    plen, mult = 0, 1
                    while True:
                        b = body[pos]
                        pos += 1
                        plen += (b & 0x7F) * mult
                        mult *= 128
                        if not b & 0x80:
                            break
                    if "poison" in topic:
                        with self.lock:
                            self.poisoned += 1
                        return  # close without PUBACK
                    with self.lock:
                        self.delivered.append((topic, body[pos + plen:]))
                    conn.sendall(b"\x40\x02" + mid)
                elif kind == 14:
                    return
        except (OSError, ssl.SSLError, IndexError):
            return
        finally:
            conn.close()

    def close(self):
        self.stop_ev.set()
        self.sock.close()


def deadletter(conf, *args):
    return subprocess.run([h.bridge_path(), "deadletter"] + list(args) + ["-c", conf],
                          capture_output=True, text=True, timeout=30)


class DeadLetter(unittest.TestCase):
    def test_poison_message_set_aside_and_the_rest_delivered(self):
        with h.Env("br-dead") as env:
            w = BridgeWorld(env)
            cloud = PoisonCloud(w.cloud_pki)
            self.addCleanup(cloud.close)
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n" % port,
                               cloud_port=cloud.port)
            conf = os.path.join(env.tmp, "bridge.conf")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/l1/telemetry/poison/deep", b"bad", qos=1))
            for i in range(50):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
            t0 = time.monotonic()
            ok = h.wait_for(lambda: len(cloud.delivered) >= 50, 45)
            took = time.monotonic() - t0
            h.log("poison sent %d times; %d of 50 delivered after %.1f s"
                  % (cloud.poisoned, len(cloud.delivered), took))
            self.assertTrue(ok, "only %d of 50 delivered; log:\n%s"
                            % (len(cloud.delivered), b.log()[-3000:]))
            self.assertEqual([p for _, p in cloud.delivered[:50]], [b"v%d" % i for i in range(50)])
            self.assertEqual(cloud.poisoned, 5)  # dead_letter_after's default
            m = re.search(r"event=cloud\.dead_letter seq=(\d+) topic=\"?plant/l1/telemetry/poison/deep"
                          r"\"? attempts=5 reason=\"[^\"]+\" action=\"[^\"]+\" "
                          r"inspect=\"plantgate-bridge deadletter show \d+ -c ([^\"]+)\"", b.log())
            self.assertIsNotNone(m, b.log()[-3000:])
            seq = int(m.group(1))
            self.assertEqual(m.group(2), conf)
            metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            self.assertRegex(metrics, rb"\nplantgate_bridge_dead_letters_total 1\n")
            self.assertRegex(metrics, rb"\nplantgate_bridge_dead_letters 1\n")
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10))
            # Listed and shown while the bridge runs (read-only).
            p = deadletter(conf, "list")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"seq=%d attempts=5 reason=" % seq)
            self.assertIn("1 dead letter in", p.stdout)
            p = deadletter(conf, "show", str(seq))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn('payload="bad"', p.stdout)
            # Replay and purge change the file: refused while the bridge runs.
            p = deadletter(conf, "replay", str(seq))
            self.assertEqual(p.returncode, 1)
            self.assertIn("in use by another process", p.stderr)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            p = deadletter(conf, "replay", str(seq))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("replayed 1 dead letter", p.stdout)
            self.assertEqual(w.queue_count(), 1)
            with sqlite3.connect(w.queue_path) as db:
                (newseq,) = db.execute("SELECT seq FROM msg").fetchone()
            self.assertGreater(newseq, seq + 50)  # a new seq, after everything sent
            p = deadletter(conf, "list")
            self.assertIn("0 dead letters in", p.stdout)
            p = deadletter(conf, "purge", "all")
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "purged 0 dead letters"))
            self.assertEqual(deadletter(conf, "show", "x").returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
