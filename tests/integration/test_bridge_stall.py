"""A cloud endpoint that keeps the connection alive (CONNACK, PINGRESP) but
never acknowledges a publish must not hold the queue hostage: after two
keepalive intervals (at least 10 s) without a PUBACK the bridge logs
cloud.stalled, reconnects and sends the unacknowledged messages again, and
they leave the queue once acknowledged.

The endpoint is a small MQTT 5 server written here (mosquitto always
acknowledges), over mutual TLS with the cloud PKI, so the bridge's TLS and
MQTT code run exactly as in production."""
import os
import socket
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


def read_packet(conn):
    """One MQTT packet: (first byte, body), or None at EOF."""
    head = conn.recv(1)
    if not head:
        return None
    length, mult = 0, 1
    while True:
        b = conn.recv(1)
        if not b:
            return None
        length += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


class SilentCloud(threading.Thread):
    """Connection 1: CONNACK and PINGRESP, PUBLISH swallowed.  Connection 2 and
    later: every QoS 1 PUBLISH acknowledged.  Records the payloads per connection."""

    def __init__(self, pki):
        super().__init__(daemon=True)
        cert, key = pki.server("localhost")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(pki.ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = []  # one list of payloads per connection
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
            got = []
            self.connections.append(got)
            ack = len(self.connections) > 1
            threading.Thread(target=self.serve, args=(conn, got, ack), daemon=True).start()

    def serve(self, conn, got, ack):
        conn.settimeout(60)
        try:
            while not self.stop_ev.is_set():
                p = read_packet(conn)
                if p is None:
                    return
                kind, body = p[0] >> 4, p[1]
                if kind == 1:  # CONNECT -> CONNACK, success, no properties
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 12:  # PINGREQ -> PINGRESP
                    conn.sendall(b"\xd0\x00")
                elif kind == 3:  # PUBLISH
                    tlen = int.from_bytes(body[0:2], "big")
                    pos = 2 + tlen
                    mid = body[pos:pos + 2]
                    pos += 2
                    plen, mult = 0, 1  # properties length (variable byte integer)
                    while True:
                        b = body[pos]
                        pos += 1
                        plen += (b & 0x7F) * mult
                        mult *= 128
                        if not b & 0x80:
                            break
                    got.append(body[pos + plen:])
                    if ack:  # PUBACK, reason success
                        conn.sendall(b"\x40\x02" + mid)
                elif kind == 14:  # DISCONNECT
                    return
        except (OSError, ssl.SSLError, IndexError):
            return
        finally:
            conn.close()

    def close(self):
        self.stop_ev.set()
        self.sock.close()


class Stall(unittest.TestCase):
    def test_swallowed_publishes_are_resent_after_a_reconnect(self):
        with h.Env("br-stall") as env:
            w = BridgeWorld(env)
            cloud = SilentCloud(w.cloud_pki)
            self.addCleanup(cloud.close)
            b = w.start_bridge(RULES, cloud_port=cloud.port)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            for i in range(5):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
            # The first connection takes all five and acknowledges none.
            self.assertTrue(h.wait_for(lambda: cloud.connections and len(cloud.connections[0]) >= 5,
                                       20), b.log())
            t0 = time.monotonic()
            # cloud_keepalive 5s: stalled after 2 x 5 s (the 10 s floor).
            self.assertTrue(b.wait_log(r"event=cloud\.stalled unacked=5 ", 40), b.log())
            waited = time.monotonic() - t0
            self.assertGreater(waited, 8, "declared stalled too early: %.1f s" % waited)
            # Reconnected: the same five again, in order; acknowledged this time.
            self.assertTrue(h.wait_for(lambda: len(cloud.connections) >= 2
                                       and len(cloud.connections[1]) >= 5, 30), b.log())
            self.assertEqual(cloud.connections[1][:5], [b"v%d" % i for i in range(5)])
            self.assertEqual(cloud.connections[0][:5], cloud.connections[1][:5])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 15),
                            "queue still holds %d; log:\n%s" % (w.queue_count(), b.log()))
            # Not a keepalive problem: the first link answered every PINGREQ.
            self.assertNotIn("keepalive", b.log().split("event=cloud.stalled")[0])
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
