"""Signed for MQTT 3.1.1, a message leaves as the integrity envelope's JSON
wrapper: its payload base64-encoded beside the signed fields, a third larger
and more.  The cloud profile's payload limit (Azure IoT Hub: 256 KiB) applies
to that wrapper.  A message whose wrapper would exceed it is refused at
ingest with reason=signed-too-large (logged and counted), never queued to be
refused by the cloud; one that fits is delivered.  Before, the raw size was
checked only, and a 200 KiB payload was queued although its 267 KiB wrapper
could never be accepted.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

DEVICE = "plant-hq-bridge"  # bridge_conf's cloud_client_id: the Azure device id
RULE = "plant/+/telemetry/# qos=1 to=devices/%s/messages/events/" % DEVICE


class SignedSize(unittest.TestCase):
    def test_wrapper_over_the_profile_limit_is_refused_at_ingest(self):
        with h.Env("br-signed-size") as env:
            w = BridgeWorld(env)
            sign_dir = env.path("signing")
            p = subprocess.run([h.PKI_SCRIPT, "--dir", sign_dir, "signing-key", "bridge-01"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            key = os.path.join(sign_dir, "private", "bridge-01.sign.key")
            sub = w.cloud_subscriber("#")
            b = w.start_bridge([RULE], extra="cloud_profile azure-iot-hub\ncloud_azure_hub h\n"
                               "site_id osaka\nsign_key %s\n" % key)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected .*protocol=3\.1\.1", 10), b.log())
            pub = w.publisher()
            big = b"x" * (200 * 1024)    # raw below 256 KiB, wrapped about 267 KiB
            small = b"y" * (150 * 1024)  # wrapped about 200 KiB
            self.assertTrue(pub.publish("plant/l1/telemetry/big", big, qos=1))
            self.assertTrue(pub.publish("plant/l1/telemetry/small", small, qos=1))
            got = sub.wait_messages(1, 20)
            self.assertTrue(b.wait_log(r"event=plant\.rejected reason=signed-too-large "
                                       r"topic=plant/l1/telemetry/big size=204800 wrapped=\d+ "
                                       r"max=262144", 10), b.log())
            wrapped = [m for m in got if m["topic"] == "devices/%s/messages/events/" % DEVICE]
            self.assertEqual(len(wrapped), 1, got)
            envelope = json.loads(wrapped[0]["payload"])
            self.assertEqual(envelope["topic"], "plant/l1/telemetry/small")
            self.assertLessEqual(len(wrapped[0]["payload"]), 256 * 1024)
            # The cloud acknowledges the small one after delivering it, so its
            # row may still be in the queue for a moment: wait for it to go.
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10), b.log()[-3000:])
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            # the big one was received and never queued
            self.assertRegex(b.log(), r"event=bridge\.stopped received=2 queued=1 acked=1 ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
