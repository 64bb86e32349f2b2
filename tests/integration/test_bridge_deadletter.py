"""One message can never block the queue (issue 12, item 1).

The cloud endpoint here (a small MQTT 5 server over mutual TLS, written in
this file like the one of test_bridge_stall.py) closes the connection
whenever it receives a PUBLISH whose topic contains "poison" -- as AWS IoT
does for a topic deeper than it allows -- and acknowledges everything else.
Without a dead-letter rule the bridge resends that message first after every
reconnect, forever, and nothing behind it is delivered.

The bridge must: after dead_letter_after (5) drops in a row with that message
the oldest unacknowledged, move it to the dead-letter table of the queue file,
log cloud.dead_letter (seq, topic, reason, the commands to inspect and
replay) and count it; then deliver the 50 messages behind it promptly.  The
operator commands list and show it while the bridge runs, replay it (bridge
stopped) under a new seq, and purge."""
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakecloud import FakeCloud  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


class PoisonCloud(FakeCloud):
    """Closes the connection on any PUBLISH whose topic contains "poison",
    acknowledges the rest.  Records what it acknowledged and how many times
    the poison came."""

    def __init__(self, pki):
        self.delivered = []  # (topic, payload) acknowledged
        self.poisoned = 0
        super().__init__(pki)

    def on_publish(self, index, topic, payload):
        with self.lock:
            if "poison" in topic:
                self.poisoned += 1
                return "close"
            self.delivered.append((topic, payload))
            return "ack"


class BrokenCloud(FakeCloud):
    """Closes the connection on every PUBLISH until `healed` is set."""

    def __init__(self, pki):
        self.healed = False
        self.delivered = []
        super().__init__(pki)

    def on_publish(self, index, topic, payload):
        with self.lock:
            if not self.healed:
                return "close"
            self.delivered.append(payload)
            return "ack"


def deadletter(conf, *args):
    return subprocess.run([h.bridge_path(), "deadletter"] + list(args) + ["-c", conf],
                          capture_output=True, text=True, timeout=30)


class DeadLetter(unittest.TestCase):
    def test_poison_message_set_aside_and_the_rest_delivered(self):
        with h.Env("br-dead") as env:
            w = BridgeWorld(env)
            cloud = PoisonCloud(w.cloud_pki)
            self.addCleanup(cloud.close)
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n" % port,
                               cloud_port=cloud.port)
            conf = os.path.join(env.tmp, "bridge.conf")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/l1/telemetry/poison/deep", b"bad", qos=1))
            for i in range(50):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
            t0 = time.monotonic()
            ok = h.wait_for(lambda: len(cloud.delivered) >= 50, 45)
            took = time.monotonic() - t0
            h.log("poison sent %d times; %d of 50 delivered after %.1f s"
                  % (cloud.poisoned, len(cloud.delivered), took))
            self.assertTrue(ok, "only %d of 50 delivered; log:\n%s"
                            % (len(cloud.delivered), b.log()[-3000:]))
            self.assertEqual([p for _, p in cloud.delivered[:50]], [b"v%d" % i for i in range(50)])
            self.assertEqual(cloud.poisoned, 5)  # dead_letter_after's default
            m = re.search(r"event=cloud\.dead_letter seq=(\d+) topic=\"?plant/l1/telemetry/poison/deep"
                          r"\"? attempts=5 reason=\"[^\"]+\" action=\"[^\"]+\" "
                          r"inspect=\"plantgate-bridge deadletter show \d+ -c ([^\"]+)\"", b.log())
            self.assertIsNotNone(m, b.log()[-3000:])
            seq = int(m.group(1))
            self.assertEqual(m.group(2), conf)
            metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            self.assertRegex(metrics, rb"\nplantgate_bridge_dead_letters_total 1\n")
            self.assertRegex(metrics, rb"\nplantgate_bridge_dead_letters 1\n")
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10))
            # Listed and shown while the bridge runs (read-only).
            p = deadletter(conf, "list")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"seq=%d attempts=5 reason=" % seq)
            self.assertIn("1 dead letter in", p.stdout)
            p = deadletter(conf, "show", str(seq))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn('payload="bad"', p.stdout)
            # Replay and purge change the file: refused while the bridge runs.
            p = deadletter(conf, "replay", str(seq))
            self.assertEqual(p.returncode, 1)
            self.assertIn("in use by another process", p.stderr)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            p = deadletter(conf, "replay", str(seq))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("replayed 1 dead letter", p.stdout)
            self.assertEqual(w.queue_count(), 1)
            with sqlite3.connect(w.queue_path) as db:
                (newseq,) = db.execute("SELECT seq FROM msg").fetchone()
            self.assertGreater(newseq, seq + 50)  # a new seq, after everything sent
            p = deadletter(conf, "list")
            self.assertIn("0 dead letters in", p.stdout)
            p = deadletter(conf, "purge", "all")
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "purged 0 dead letters"))
            self.assertEqual(deadletter(conf, "show", "x").returncode, 2)


    def test_a_broken_link_does_not_empty_the_queue(self):
        # A cloud that drops the connection whatever is sent (two bridges with
        # one client id, a policy that refuses this client): after 10 dead
        # letters in a row with nothing acknowledged between, the bridge stops
        # setting messages aside and keeps them queued.
        with h.Env("br-dead-held") as env:
            w = BridgeWorld(env)
            cloud = BrokenCloud(w.cloud_pki)
            self.addCleanup(cloud.close)
            b = w.start_bridge(RULES, extra="dead_letter_after 1\n", cloud_port=cloud.port)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = w.publisher()
            for i in range(15):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
            self.assertTrue(b.wait_log(r"event=cloud\.dead_letter_held seq=\d+ "
                                       r"dead_letters_in_a_row=10 ", 40), b.log()[-3000:])
            time.sleep(1.0)
            self.assertEqual(b.log().count("event=cloud.dead_letter "), 10)
            self.assertEqual(w.queue_count(), 5)
            cloud.healed = True
            self.assertTrue(h.wait_for(lambda: len(cloud.delivered) >= 5, 20), b.log()[-3000:])
            self.assertEqual(cloud.delivered[:5], [b"v%d" % i for i in range(10, 15)])
            self.assertTrue(b.wait_log(r"event=cloud\.dead_letter_resumed", 5))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            p = deadletter(os.path.join(env.tmp, "bridge.conf"), "replay", "all")
            self.assertEqual((p.returncode, p.stdout.split(" (")[0]), (0, "replayed 10 dead letters"))
            self.assertEqual(w.queue_count(), 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
