"""The plant link reads on while a batch is being committed (issue 14), but
no acknowledgement may leave before its own commit has returned.

With PLANTGATE_TEST_COMMIT_DELAY_MS every commit takes seconds (a very slow
disk): while the first batch sits in its commit, the bridge goes on reading
the next messages, whose PUBACKs must wait too.  The bridge is then killed
with SIGKILL in the middle of that commit.  Nothing was stored (the queue is
empty), so every message must still be held by the plant broker, which
redelivers it to the restarted bridge: all of them reach the cloud, each
once.  An acknowledgement that left early would have made the plant broker
forget its message: it would be missing here.

The same holds for a batch that waits for queue_commit_interval before its
commit starts: its PUBACKs wait with it.

A commit that takes over a second (a slow disk) is logged as
queue.slow_commit at once, then at most once a minute.

With queue_commit_interval auto (the default) the pause is taken only while
the plant broker sends fast: none for a trickle, 2 ms during a burst, none
again after it; nothing is lost or duplicated on the way."""
import json
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_http import get, parse_metrics  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/+/+/telemetry/# qos=1 strip=plant/ prefix=sites/"]
N = 60


class Pipeline(unittest.TestCase):
    def test_no_ack_leaves_before_its_commit(self):
        with h.Env("br-pipe") as env:
            w = BridgeWorld(env, plant_extra="max_inflight_messages 100\n")
            sub = w.cloud_subscriber("sites/#")
            b = w.start_bridge(RULES, env_vars={"PLANTGATE_TEST_COMMIT_DELAY_MS": "3000"})
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            self.assertIn("event=bridge.TEST_COMMIT_DELAY", b.log())
            pub = w.publisher()
            # The first message starts a commit; the rest arrive while it runs.
            t0 = time.monotonic()  # before the commit's 3 s start
            self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": 0}), qos=1))
            time.sleep(0.3)
            for n in range(1, N):
                self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": n}), qos=1))
            time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))  # all read by now
            self.assertLess(time.monotonic() - t0, 2.5, "too slow: the first commit may have ended")
            self.assertEqual(w.queue_count(), 0, "the commit was to be still running")
            b.kill()
            self.assertEqual(w.queue_count(), 0, "nothing was committed before the kill")
            self.assertEqual(sub.take(), [], "nothing can have left before its commit")

            # Restarted without the delay: the plant broker still holds all of
            # them (no PUBACK reached it) and redelivers them.
            b = w.start_bridge(RULES, name="bridge2")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            sub.wait_messages(N, 30)
            time.sleep(0.5)  # a duplicate would arrive by now
            got = sorted(json.loads(m["payload"])["n"] for m in sub.take())
            self.assertEqual(got, list(range(N)), "missing or duplicated after the kill:\n" + b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 15))

    def test_commit_interval_holds_the_waiting_batch(self):
        with h.Env("br-pipe-iv") as env:
            w = BridgeWorld(env, plant_extra="max_inflight_messages 100\n")
            sub = w.cloud_subscriber("sites/#")
            # a pause of 1 s between the starts of two commits (the maximum)
            b = w.start_bridge(RULES, extra="queue_commit_interval 1s")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            t0 = time.monotonic()  # before n=0's commit starts the pause
            self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": 0}), qos=1))
            # n=0 is committed at once (no commit before it) and delivered
            self.assertEqual(len(sub.wait_messages(1, 10)), 1, b.log())
            sub.take()
            for n in range(1, N):
                self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": n}), qos=1))
            time.sleep(0.2)
            h.log("pause case: n=1..%d published and read %.2f s after n=0" % (N - 1, time.monotonic() - t0))
            self.assertLess(time.monotonic() - t0, 0.95, "too slow to land inside the pause")
            # read, waiting for the pause to end: nothing stored, nothing acknowledged
            self.assertEqual(w.queue_count(), 0)
            b.kill()
            self.assertEqual(sub.take(), [])
            b = w.start_bridge(RULES, name="bridge2")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            sub.wait_messages(N - 1, 30)
            time.sleep(0.5)
            got = sorted(json.loads(m["payload"])["n"] for m in sub.take())
            self.assertEqual(got, list(range(1, N)), "missing or duplicated after the kill:\n" + b.log())

    def test_slow_commit_logged_once_a_minute(self):
        with h.Env("br-pipe-slow") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("sites/#")
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d" % port,
                               env_vars={"PLANTGATE_TEST_COMMIT_DELAY_MS": "1100"})
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            # the first starts a commit; the others arrive during it and make
            # a second slow one
            self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": 0}), qos=1))
            time.sleep(0.3)
            for n in range(1, 3):
                self.assertTrue(pub.publish("plant/hq/l1/a/telemetry/t", json.dumps({"n": n}), qos=1))
            self.assertEqual(len(sub.wait_messages(3, 30)), 3, b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 15))
            v = parse_metrics(get(port, "/metrics")[1])[0]
            hist = "plantgate_bridge_commit_duration_seconds_bucket{le=\"%s\"}"
            self.assertGreaterEqual(v[hist % "+Inf"] - v[hist % "1"], 2, "two slow commits expected")
            lines = [ln for ln in b.log().splitlines() if "event=queue.slow_commit" in ln]
            self.assertEqual(len(lines), 1, "logged once, not per slow commit:\n" + b.log())
            mt = re.search(r"duration_ms=(\d+) messages=\d+ slow_commits=1 max_ms=(\d+) path=\S+", lines[0])
            self.assertIsNotNone(mt, lines[0])
            self.assertGreaterEqual(int(mt.group(1)), 1100)
            self.assertIn("hint=", lines[0])
            got = sorted(json.loads(m["payload"])["n"] for m in sub.take())
            self.assertEqual(got, [0, 1, 2])

    def test_auto_pause_only_while_messages_come_fast(self):
        with h.Env("br-pipe-auto") as env:
            w = BridgeWorld(env, plant_extra="max_inflight_messages 100\n")
            sub = w.cloud_subscriber("sites/#")
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d" % port)  # the default: auto
            self.assertTrue(b.wait_log(r"event=http\.listening", 10), b.log())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())

            def pause():
                return parse_metrics(get(port, "/metrics")[1])[0]["plantgate_bridge_commit_pause_seconds"]

            topic = "plant/hq/l1/a/telemetry/t"
            pub = w.publisher()
            slow = 10
            for n in range(slow):  # 10 msg/s: every message committed at once
                self.assertTrue(pub.publish(topic, json.dumps({"n": n}), qos=1))
                time.sleep(0.1)
                self.assertEqual(pause(), 0.0, "a pause at 10 msg/s")
            self.assertEqual(len(sub.wait_messages(slow, 15)), slow)

            seen, stop = [], threading.Event()

            def watch():
                while not stop.is_set():
                    seen.append(pause())
                    time.sleep(0.005)

            t = threading.Thread(target=watch)
            t.start()
            burst = 10000  # flat out, over 2,000 msg/s even on a loaded machine
            try:
                pub.c.max_inflight_messages_set(100)
                infos = [pub.c.publish(topic, json.dumps({"n": n}), qos=1)
                         for n in range(slow, slow + burst)]
                infos[-1].wait_for_publish(120)
                sub.wait_messages(slow + burst, 120)
            finally:
                stop.set()
                t.join()
            self.assertIn(0.002, set(seen), "no pause during a burst of %d messages" % burst)
            self.assertTrue(h.wait_for(lambda: pause() == 0.0, 5), "the pause outlived the burst")
            time.sleep(0.5)  # a duplicate would arrive by now
            got = sorted(json.loads(m["payload"])["n"] for m in sub.take())
            self.assertEqual(got, list(range(slow + burst)), "missing or duplicated:\n" + b.log()[-3000:])


if __name__ == "__main__":
    unittest.main()
