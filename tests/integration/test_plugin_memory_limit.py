"""A broker with `memory_limit` keeps working while the plugin rewrites the
user properties of every message (the provenance stamp).

The plugin reads each property with mosquitto_property_read_* and frees what
they return.  Debian 12's mosquitto 2.0.11 exports those functions, so they
allocate with the broker's counted allocator; an upstream 2.0 broker (Debian
13's 2.0.21) does not export them, the plugin gets libmosquitto's, which
allocate with plain malloc, and freeing that with the broker's mosquitto_free
subtracts from the broker's memory count what it never added.  The count
wraps below zero, and with memory_limit set the broker then refuses every
allocation: messages stop arriving.  scripts/compat runs this file against
2.0.11, 2.0.21 and 2.1.2."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

# 16 user properties of ~50 bytes: each message makes the plugin read and
# free 32 strings, a few KiB a message; 1,500 messages are several MiB, far
# more than the broker's count starts with.
PROPS = {"k%02d" % i: "v" * 48 for i in range(16)}
N = 1500


class MemoryLimit(unittest.TestCase):
    def test_stamped_messages_under_memory_limit(self):
        with h.Env("memlimit") as env:
            pki = env.pki()
            b = env.plant_broker(pki, policy=policies.BASIC, extra="memory_limit 67108864",
                                 plugin_opts={"stamp_received": "true"})
            hmi = env.client(pki, "hmi-1", b)
            self.assertEqual(hmi.connect(), 0)
            self.assertEqual(hmi.subscribe("plant/hq/l1/+/telemetry/#", 1), [1])
            dev = env.client(pki, "sensor-1", b)
            self.assertEqual(dev.connect(), 0)
            for i in range(N):
                self.assertTrue(dev.publish("plant/hq/l1/sensor-1/telemetry/t", b"%d" % i, qos=1,
                                            props=PROPS), "publish %d failed\n%s" % (i, b.log()[-3000:]))
            msgs = hmi.wait_messages(N, 60)
            self.assertEqual(len(msgs), N, b.log()[-3000:])
            # The device's own properties arrive, and the stamp with the true sender.
            last = msgs[-1]
            self.assertEqual(last["props"].get("k15"), "v" * 48)
            self.assertEqual([v for k, v in last["props_list"] if k == "plantgate-device"],
                             ["sensor-1"])
            self.assertNotIn("out of memory", b.log().lower())
            # And the broker still admits a new device.
            late = env.client(pki, "sensor-2", b)
            self.assertEqual(late.connect(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
