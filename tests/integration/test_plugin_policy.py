"""What a connected device may touch: its policy, enforced by the real broker.
Each refusal is checked by what a subscriber does *not* receive (a marker
message published after the refused one proves the refused one would have
arrived by then), and by the plugin's log line."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

REFUSED = 0x80  # any SUBACK code >= 0x80 is a refusal


class Policy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = h.Env("policy")
        cls.pki = cls.env.pki()
        cls.broker = cls.env.plant_broker(cls.pki, policy=policies.BASIC)
        cls.eng = cls.env.client(cls.pki, "eng-1", cls.broker)
        assert cls.eng.connect() == 0
        assert cls.eng.subscribe("plant/hq/l1/#", 1)[0] < REFUSED

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.eng.take()

    def device(self, ident, **kw):
        c = self.env.client(self.pki, ident, self.broker, **kw)
        self.assertEqual(c.connect(), 0)
        self.addCleanup(c.disconnect)
        return c

    def published_topics(self, pub, attempts, marker="plant/hq/l1/sensor-1/telemetry/marker"):
        """Publish each (topic, kwargs), then a marker; return the topics eng-1 saw."""
        for topic, kw in attempts:
            pub.publish(topic, b"x" * kw.pop("size", 1), **kw)
        self.assertTrue(pub.publish(marker, b"m", qos=1))
        self.assertTrue(h.wait_for(lambda: any(m["topic"] == marker for m in self.eng.messages), 15),
                        "the marker message never arrived: the subscriber is not receiving at all")
        return [m["topic"] for m in self.eng.take()]

    def test_own_telemetry_is_delivered(self):
        s = self.device("sensor-1")
        seen = self.published_topics(s, [("plant/hq/l1/sensor-1/telemetry/temp", {"qos": 1})])
        self.assertIn("plant/hq/l1/sensor-1/telemetry/temp", seen)

    def test_another_devices_topic_is_refused(self):
        s = self.device("sensor-1")
        seen = self.published_topics(s, [("plant/hq/l1/sensor-2/telemetry/temp", {"qos": 1}),
                                         ("plant/hq/l1/sensor-2/config", {"qos": 0})])
        self.assertNotIn("plant/hq/l1/sensor-2/telemetry/temp", seen)
        self.assertNotIn("plant/hq/l1/sensor-2/config", seen)
        self.assertTrue(self.broker.wait_log(
            r'publish denied: identity="sensor-1" topic="plant/hq/l1/sensor-2/telemetry/temp"', 5))

    def test_other_line_and_site_are_refused(self):
        s = self.device("sensor-1")
        seen = self.published_topics(s, [("plant/hq/l9/sensor-1/telemetry/t", {"qos": 1}),
                                         ("plant/other/l1/sensor-1/telemetry/t", {"qos": 1})])
        self.assertEqual([t for t in seen if "marker" not in t], [])

    def test_qos_retain_and_size_limits(self):
        s = self.device("sensor-1")
        base = "plant/hq/l1/sensor-1/telemetry/"
        seen = self.published_topics(s, [(base + "qos2", {"qos": 2}),
                                         (base + "retained", {"qos": 1, "retain": True}),
                                         (base + "big", {"qos": 1, "size": 2048}),
                                         (base + "fits", {"qos": 1, "size": 1024})])
        self.assertNotIn(base + "qos2", seen)
        self.assertNotIn(base + "retained", seen)
        self.assertNotIn(base + "big", seen)
        self.assertIn(base + "fits", seen)
        self.assertTrue(self.broker.wait_log(r"publish denied: .*topic=\"%sbig\"" % base, 5))

    def test_subscriptions_beyond_the_grant_are_refused(self):
        s = self.device("sensor-1")
        self.assertLess(s.subscribe("plant/hq/l1/sensor-1/config")[0], REFUSED)
        for filt in ["#", "plant/#", "plant/hq/l1/+/config", "plant/hq/l1/sensor-2/config",
                     "$SYS/#", "$share/g/#", "$share/g/plant/hq/l1/+/config", "+/hq/l1/sensor-1/config"]:
            self.assertGreaterEqual(s.subscribe(filt)[0], REFUSED, "subscribe %r was granted" % filt)

    def test_shared_subscription_checked_against_its_filter(self):
        s = self.device("sensor-1")
        self.assertLess(s.subscribe("$share/g1/plant/hq/l1/sensor-1/config")[0], REFUSED)

    def test_sys_topics_only_for_roles_granted_them(self):
        ops = self.device("ops-1")
        self.assertLess(ops.subscribe("$SYS/#")[0], REFUSED)
        hmi = self.device("hmi-1")
        self.assertGreaterEqual(hmi.subscribe("$SYS/#")[0], REFUSED)

    def test_read_deny_wins_over_a_granted_subscription(self):
        # eng-1 subscribed to plant/hq/l1/# but its role denies reading .../secret/...
        vault = self.device("vault-1")
        seen = self.published_topics(vault, [("plant/hq/l1/vault-1/secret/key", {"qos": 1})],
                                     marker="plant/hq/l1/vault-1/status")
        self.assertIn("plant/hq/l1/vault-1/status", seen)
        self.assertNotIn("plant/hq/l1/vault-1/secret/key", seen)
        self.assertTrue(self.broker.wait_log(r'read denied: identity="eng-1" topic="plant/hq/l1/vault-1/secret/key"', 5))

    def test_engineer_commands_machines_of_its_own_line_only(self):
        eng = self.device("eng-2")
        sensor = self.device("sensor-1")
        self.assertLess(sensor.subscribe("plant/hq/l1/sensor-1/config", 1)[0], REFUSED)
        self.assertTrue(eng.publish("plant/hq/l9/sensor-9/config", b"rate=9", qos=1))
        self.assertTrue(eng.publish("plant/hq/l1/sensor-1/config", b"rate=5", qos=1))
        got = sensor.wait_messages(1, 5)
        self.assertEqual([m["topic"] for m in got], ["plant/hq/l1/sensor-1/config"])
        # eng-1 (on plant/hq/l1/#) gets a copy too: let it land here, not in
        # the next test, which counts what eng-1 receives.
        self.assertTrue(h.wait_for(lambda: any(m["topic"] == "plant/hq/l1/sensor-1/config"
                                               for m in self.eng.messages), 5))
        self.assertTrue(self.broker.wait_log(r'publish denied: identity="eng-2" topic="plant/hq/l9/', 5))


class QueuedDelivery(unittest.TestCase):
    def test_queued_messages_for_an_offline_session_follow_the_policy(self):
        with h.Env("queued") as env:
            pki = env.pki()
            broker = env.plant_broker(pki, policy=policies.BASIC)
            hmi = env.client(pki, "hmi-1", broker, clean=False)
            self.assertEqual(hmi.connect(), 0)
            self.assertLess(hmi.subscribe("plant/hq/l1/+/telemetry/#", 1)[0], REFUSED)
            hmi.disconnect()
            s = env.client(pki, "sensor-1", broker)
            self.assertEqual(s.connect(), 0)
            for i in range(5):
                self.assertTrue(s.publish("plant/hq/l1/sensor-1/telemetry/t", b"%d" % i, qos=1))
            hmi2 = env.client(pki, "hmi-1", broker, clean=False)
            self.assertEqual(hmi2.connect(), 0)
            got = hmi2.wait_messages(5, 10)
            self.assertEqual([m["payload"] for m in got], [b"0", b"1", b"2", b"3", b"4"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
