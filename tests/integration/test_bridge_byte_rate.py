"""drain_byte_rate paces the cloud link in bytes (AWS IoT Core allows
512 KiB/s per connection; the aws-iot profile defaults to that): a token
bucket on the bytes published (topic, payload, properties), one second's
worth as burst.  With drain_byte_rate 64K, 64 messages of 10 KiB (about
640 KiB) take at least about nine seconds to reach the cloud, all arrive, in
order, and none twice; meanwhile the bridge goes on reading the plant (the
whole batch is queued at once) and deleting what the cloud acknowledged.
Before, only messages/s were paced and the batch left in well under a
second (and the key did not exist).
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld, seqs_of  # noqa: E402

N = 64
SIZE = 10 * 1024


class ByteRate(unittest.TestCase):
    def test_bytes_per_second_paced_in_order(self):
        with h.Env("br-byte-rate") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("plant/#")
            b = w.start_bridge(["plant/+/telemetry/# qos=1"], extra="drain_byte_rate 64K\n")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            pub = w.publisher()
            for n in range(N):
                body = json.dumps({"n": n, "pad": "x" * SIZE})
                self.assertTrue(pub.publish("plant/l1/telemetry/m", body, qos=1))
            self.assertTrue(h.wait_for(lambda: len(sub.messages) >= 1, 10), b.log()[-3000:])
            first = time.monotonic()
            # The plant side is not held up by the pacing: within two seconds
            # everything is in the queue or already at the cloud.
            time.sleep(2)
            at_cloud = len(sub.messages)
            self.assertLess(at_cloud, N // 2, "not paced: %d of %d after 2 s" % (at_cloud, N))
            # A message can leave the queue between the two counts (its PUBACK
            # comes a moment after the subscriber has it): count again until
            # both agree, not once.
            self.assertTrue(h.wait_for(lambda: w.queue_count() + len(sub.messages) >= N, 5 * h.SLOW),
                            "queued %d + at cloud %d < %d" % (w.queue_count(), len(sub.messages), N))
            self.assertTrue(h.wait_for(lambda: len(sub.messages) >= N, 25), b.log()[-3000:])
            took = time.monotonic() - first
            got = sub.take()
            self.assertEqual(seqs_of(got), list(range(N)))  # all, in order, once
            # 64 KiB burst, then about 590 KiB (payloads, topics, properties)
            # at 64 KiB/s: about 9 s.
            self.assertGreaterEqual(took, 8.5, "took %.1f s" % took)
            self.assertLess(took, 14, "took %.1f s" % took)
            # What the cloud acknowledged was deleted from the queue.
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 5), b.log()[-3000:])
            h.log("byte_rate: %d x %d B at drain_byte_rate 64K took %.2f s" % (N, SIZE, took))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
