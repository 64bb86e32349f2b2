"""The provenance stamp and MQTT 5 Maximum Packet Size (issue 11, item 9),
through real mosquitto 2.0.11.

The stamp adds 21 bytes plus the identity (47 more with plantgate-received) to
every message.  A message that fitted a subscriber's Maximum Packet Size
without it no longer does, and mosquitto drops it for that subscriber
(lib/send_publish.c).  Plugins cannot read a subscriber's Maximum Packet Size,
so with plugin_opt_max_packet_size the operator declares the smallest one in
use, and the plugin counts and logs every message that only its stamp pushes
over it."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

MAX = 200
TOPIC = "plant/hq/l1/sensor-1/telemetry/x"


def unstamped_size(payload_len):
    """What mosquitto compares with Maximum Packet Size for a QoS 0 PUBLISH
    without properties: remaining length plus its own length bytes."""
    remaining = 2 + len(TOPIC) + payload_len + 1
    return remaining + (1 if remaining < 128 else 2)


class PacketSize(unittest.TestCase):
    def test_messages_the_stamp_pushes_over_the_limit_are_counted_and_logged(self):
        with h.Env("packet-size") as env:
            pki = env.pki()
            b = env.plant_broker(pki, policy=policies.BASIC,
                                 plugin_opts={"max_packet_size": str(MAX), "sys_interval": "1s"})
            sub = env.client(pki, "hmi-1", b)
            # A constrained subscriber: Maximum Packet Size in its CONNECT.
            orig = sub.c.connect

            def connect(host, port, keepalive, clean_start, properties):
                properties.MaximumPacketSize = MAX
                return orig(host, port, keepalive, clean_start=clean_start, properties=properties)
            sub.c.connect = connect
            self.assertEqual(sub.connect(), 0)
            self.assertEqual(sub.subscribe("plant/hq/l1/+/telemetry/#", 0), [0])
            dev = env.client(pki, "sensor-1", b)
            self.assertEqual(dev.connect(), 0)
            fits = MAX - 5 - unstamped_size(0)   # 5 bytes under without the stamp
            self.assertLessEqual(unstamped_size(fits), MAX)
            self.assertTrue(dev.publish(TOPIC, b"a" * fits, qos=0))
            self.assertTrue(dev.publish(TOPIC, b"b" * 20, qos=0))
            got = sub.wait_messages(1, timeout=5)
            time.sleep(0.5)
            self.assertEqual([m["payload"] for m in sub.messages], [b"b" * 20],
                             "the stamped message did (or the small one did not) arrive")
            self.assertTrue(b.wait_log(r"Dropping too large outgoing PUBLISH for hmi-1", 5))
            self.assertTrue(b.wait_log(
                r'stamp makes messages too large: 1 messages went over plugin_opt_max_packet_size 200 '
                r'only by the provenance stamp, e\.g\. identity="sensor-1" topic="%s" \d+ bytes \(%d without'
                % (TOPIC, unstamped_size(fits)), 5), b.log()[-1500:])
            self.assertTrue(got is not None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
