"""A cloud endpoint that keeps the connection alive (CONNACK, PINGRESP) but
never acknowledges a publish must not hold the queue hostage: after two
keepalive intervals (at least 10 s) without a PUBACK the bridge logs
cloud.stalled, reconnects and sends the unacknowledged messages again, and
they leave the queue once acknowledged.

The endpoint is a small MQTT 5 server written here (mosquitto always
acknowledges), over mutual TLS with the cloud PKI, so the bridge's TLS and
MQTT code run exactly as in production."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakecloud import FakeCloud  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


class SilentCloud(FakeCloud):
    """Connection 1: CONNACK and PINGRESP, PUBLISH swallowed.  Connection 2 and
    later: every QoS 1 PUBLISH acknowledged.  Records the payloads per connection."""

    def __init__(self, pki):
        self.connections = []  # one list of payloads per connection
        super().__init__(pki)

    def on_publish(self, index, topic, payload):
        with self.lock:
            while len(self.connections) <= index:
                self.connections.append([])
            self.connections[index].append(payload)
        return "ack" if index > 0 else "swallow"


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
            t0 = time.monotonic()  # before the first send, which starts the stall clock
            for i in range(5):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
            # The first connection takes all five and acknowledges none.
            self.assertTrue(h.wait_for(lambda: cloud.connections and len(cloud.connections[0]) >= 5,
                                       20), b.log())
            # cloud_keepalive 5s: stalled after 2 x 5 s (the 10 s floor).
            self.assertTrue(b.wait_log(r"event=cloud\.stalled unacked=5 ", 40), b.log())
            waited = time.monotonic() - t0
            self.assertGreater(waited, 9.5, "declared stalled too early: %.1f s" % waited)
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
