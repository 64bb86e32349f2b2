"""Security must not break MQTT: with the plugin enforcing a policy, the
ordinary features keep working for authorised clients — retained messages,
wills, QoS 0/1/2, persistent sessions, shared subscriptions, MQTT 3.1.1 and 5."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

POLICY = """
default deny
unknown-devices refuse
role peer
  publish   lab/#   qos<=2
  subscribe lab/#   qos<=2
  read      lab/#
end
device a role peer
device b role peer
device c role peer
"""


class Features(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = h.Env("features")
        cls.pki = cls.env.pki()
        cls.broker = cls.env.plant_broker(cls.pki, policy=POLICY)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def client(self, ident, **kw):
        c = self.env.client(self.pki, ident, self.broker, **kw)
        self.assertEqual(c.connect(), 0)
        self.addCleanup(c.disconnect)
        return c

    def test_qos_0_1_2_in_mqtt5_and_311(self):
        for proto in (5, 4):
            with self.subTest(protocol=proto):
                sub = self.client("b", protocol=proto)
                self.assertEqual(sub.subscribe("lab/q/#", 2), [2])
                pub = self.client("a", protocol=proto)
                for q in (0, 1, 2):
                    self.assertTrue(pub.publish("lab/q/%d" % q, b"qos%d" % q, qos=q))
                got = sub.wait_messages(3, 10)
                self.assertEqual(sorted((m["topic"], m["qos"]) for m in got),
                                 [("lab/q/0", 0), ("lab/q/1", 1), ("lab/q/2", 2)])
                pub.disconnect()
                sub.disconnect()

    def test_retained_message_reaches_a_later_subscriber(self):
        pub = self.client("a")
        self.assertTrue(pub.publish("lab/retained", b"last-value", qos=1, retain=True))
        sub = self.client("b")
        sub.subscribe("lab/retained", 1)
        got = sub.wait_messages(1, 5)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["payload"], b"last-value")
        self.assertTrue(got[0]["retain"])

    def test_will_is_delivered_when_a_device_drops(self):
        sub = self.client("b")
        sub.subscribe("lab/will/a", 1)
        dev = self.env.client(self.pki, "a", self.broker)
        dev.c.will_set("lab/will/a", b"a went away", qos=1)
        self.assertEqual(dev.connect(keepalive=1), 0)
        # Drop the connection without DISCONNECT: stop the network loop and close the socket.
        dev.c.loop_stop()
        dev.loop_started = False
        dev.c.socket().close()
        got = sub.wait_messages(1, 10)
        self.assertEqual([m["payload"] for m in got], [b"a went away"])

    def test_persistent_session_in_mqtt311(self):
        sub = self.env.client(self.pki, "c", self.broker, protocol=4, clean=False)
        self.assertEqual(sub.connect(), 0)
        self.assertEqual(sub.subscribe("lab/persist/#", 1), [1])
        sub.disconnect()
        pub = self.client("a", protocol=4)
        for i in range(3):
            self.assertTrue(pub.publish("lab/persist/x", b"%d" % i, qos=1))
        again = self.env.client(self.pki, "c", self.broker, protocol=4, clean=False)
        self.assertEqual(again.connect(), 0)
        self.addCleanup(again.disconnect)
        got = again.wait_messages(3, 10)
        self.assertEqual([m["payload"] for m in got], [b"0", b"1", b"2"])

    def test_shared_subscription_splits_messages(self):
        b = self.client("b")
        c = self.client("c")
        self.assertEqual(b.subscribe("$share/workers/lab/jobs/#", 1), [1])
        self.assertEqual(c.subscribe("$share/workers/lab/jobs/#", 1), [1])
        pub = self.client("a")
        for i in range(20):
            self.assertTrue(pub.publish("lab/jobs/%d" % i, b"job", qos=1))
        h.wait_for(lambda: len(b.messages) + len(c.messages) >= 20, 30)
        time.sleep(0.2)  # a duplicate would arrive now
        topics = sorted([m["topic"] for m in b.messages] + [m["topic"] for m in c.messages])
        self.assertEqual(topics, sorted("lab/jobs/%d" % i for i in range(20)))
        self.assertTrue(b.messages and c.messages, "both members of the group should get work")


if __name__ == "__main__":
    unittest.main(verbosity=2)
