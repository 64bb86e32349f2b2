"""plantgate-bridge killed with SIGKILL again and again under a steady QoS 1
stream: the persist-before-acknowledge loop must lose nothing.  At the cloud,
every sequence number sent by the plant publisher must arrive; duplicates are
allowed (at-least-once) and reported."""
import json
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

KILLS = int(os.environ.get("PG_BRIDGE_KILLS", "20"))


class Publisher(threading.Thread):
    """Publishes {"n": i} at QoS 1, each acknowledged by the plant broker."""

    def __init__(self, client, topics):
        super().__init__(daemon=True)
        self.client = client
        self.topics = topics
        self.sent = 0
        self.failed = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            n = self.sent
            if self.client.publish(self.topics[n % len(self.topics)], json.dumps({"n": n}), qos=1,
                                   timeout=5):
                self.sent += 1
            else:
                self.failed += 1
                time.sleep(0.05)
            time.sleep(0.001)


class Crash(unittest.TestCase):
    def test_sigkill_loop_loses_nothing(self):
        t0 = time.monotonic()
        with h.Env("br-crash") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("sites/#")
            rules = ["plant/+/+/+/telemetry/# qos=1 strip=plant/ prefix=sites/"]
            b = w.start_bridge(rules)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = Publisher(w.publisher(), ["plant/hq/l1/a/telemetry/x", "plant/hq/l1/b/telemetry/y"])
            pub.start()
            rnd = random.Random(5)
            for i in range(KILLS):
                time.sleep(rnd.uniform(0.3, 1.2))
                b.kill()
                time.sleep(rnd.uniform(0.0, 0.3))
                b = w.start_bridge(rules)
            time.sleep(1.0)
            pub.stop_ev.set()
            pub.join(10)
            sent = pub.sent
            got = sub.wait_unique(lambda m: json.loads(m["payload"])["n"], sent)
            nums = [json.loads(m["payload"])["n"] for m in got]
            missing = sorted(set(range(sent)) - set(nums))
            dups = len(nums) - len(set(nums))
            elapsed = time.monotonic() - t0
            h.log("kill -9 x%d: sent=%d received=%d unique=%d missing=%d duplicates=%d "
                  "publish_retries=%d elapsed=%.1fs" % (KILLS, sent, len(nums), len(set(nums)),
                                                        len(missing), dups, pub.failed, elapsed))
            self.assertGreater(sent, 100)
            self.assertEqual(missing, [], "lost messages: %s" % missing[:50])
            # Per topic, ignoring duplicates, the order is kept.
            for topic in ("sites/hq/l1/a/telemetry/x", "sites/hq/l1/b/telemetry/y"):
                per = [json.loads(m["payload"])["n"] for m in got if m["topic"] == topic]
                first = []
                seen = set()
                for x in per:
                    if x not in seen:
                        seen.add(x)
                        first.append(x)
                self.assertEqual(first, sorted(first), topic)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 5))


if __name__ == "__main__":
    unittest.main(verbosity=2)
