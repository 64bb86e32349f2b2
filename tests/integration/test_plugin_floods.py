"""Floods from one device (issue 11, items 4 and 5), through real mosquitto.

Item 4: the token buckets and the flood counter belong to the identity, not to
the connection record that a clean session loses at every disconnect: a
device that reconnects between bursts gets no fresh bucket.

Item 5: refused publishes and subscribes count toward flood_disconnect, and
the audit trail summarises a device's burst of refusals (count and examples)
instead of writing one line per refusal, with its hash chain intact."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

AUDIT_TOOL = os.path.join(h.BUILD, "plugin", "plantgate-audit-asan" if h.ASAN else "plantgate-audit")
RATE = 10  # messages/s
BURST = 1  # seconds of RATE


def audit_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Floods(unittest.TestCase):
    def setUp(self):
        self.env = h.Env("floods")
        self.addCleanup(self.env.close)
        self.pki = self.env.pki()
        self.audit = self.env.path("audit.jsonl")

    def broker(self, **opts):
        o = {"audit_log": self.audit}
        o.update(opts)
        self.b = self.env.plant_broker(self.pki, policy=policies.BASIC, plugin_opts=o)
        return self.b

    def test_rate_limit_survives_reconnects(self):
        self.broker(rate_messages=str(RATE), rate_burst=str(BURST))
        sub = self.env.client(self.pki, "hmi-1", self.b)
        self.assertEqual(sub.connect(), 0)
        self.assertEqual(sub.subscribe("plant/hq/l1/sensor-1/telemetry/#", 0), [0])
        t0 = time.monotonic()
        for r in range(10):
            # MQTT 3.1.1 clean session: its connection record is forgotten
            # right after each disconnect.
            dev = self.env.client(self.pki, "sensor-1", self.b, protocol=4, clean=True)
            self.assertEqual(dev.connect(), 0, "round %d" % r)
            for i in range(150):
                dev.publish("plant/hq/l1/sensor-1/telemetry/n", b"%d-%d" % (r, i))
            time.sleep(0.05)
            dev.disconnect()
        elapsed = time.monotonic() - t0
        time.sleep(1.0 * h.SLOW)
        delivered = len(sub.messages)
        allowed = RATE * BURST + RATE * elapsed
        h.log("10 reconnects x 150 messages in %.1f s: %d delivered, %.0f allowed" % (elapsed, delivered, allowed))
        self.assertGreater(delivered, 0)
        self.assertLessEqual(delivered, allowed * 1.1 + 2,
                             "a reconnect refilled the bucket: %d delivered, %.0f allowed" % (delivered, allowed))

    def test_refusals_count_toward_flood_disconnect(self):
        self.broker(flood_disconnect="200")
        dev = self.env.client(self.pki, "sensor-1", self.b)
        self.assertEqual(dev.connect(), 0)
        for i in range(300):
            dev.publish("plant/hq/l1/sensor-2/telemetry/%d" % i, b"x")
        self.assertTrue(dev.wait_disconnect(10), "a device sending refused publishes was never disconnected")
        self.assertTrue(self.b.wait_log(r'kick: identity="sensor-1" reason="sustained flooding', 5))

    def test_refusal_burst_is_summarised_in_the_audit_trail(self):
        self.broker()
        dev = self.env.client(self.pki, "sensor-1", self.b)
        self.assertEqual(dev.connect(), 0)
        n = 1500
        for i in range(n):
            dev.publish("plant/hq/l1/sensor-2/telemetry/%d" % i, b"x")
        self.assertEqual(dev.subscribe("plant/hq/l1/sensor-2/#", 1), [0x87])
        # The burst's summary comes when its 10 s window closes.
        self.assertTrue(self.b.wait_log(r"further refusals for identity=\"sensor-1\" not logged", 20),
                        "no summary of the burst")
        time.sleep(0.5)
        lines = audit_lines(self.audit)
        mine = [r for r in lines if r.get("identity") == "sensor-1" and r["event"] != "connect"]
        h.log("%d refusals: %d audit lines, %d bytes" % (n + 1, len(mine), os.path.getsize(self.audit)))
        self.assertLessEqual(len(mine), 30, "one audit line per refusal")
        summary = [r for r in mine if r["event"] == "audit-suppressed"]
        self.assertEqual(len(summary), 1, mine[-3:])
        written = len([r for r in mine if r["event"] in ("publish-denied", "subscribe-denied")])
        self.assertEqual(written + summary[0]["count"], n + 1, summary[0])
        self.assertIn("plant/hq/l1/sensor-2/telemetry/", summary[0]["reason"])
        p = subprocess.run([AUDIT_TOOL, "verify", self.audit], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
