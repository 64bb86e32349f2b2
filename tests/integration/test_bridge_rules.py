"""Forward rules end to end (issue 12, items 3 and 7).

- The two rules of config/bridge.example overlap (the energy rule is covered by
  the telemetry rule): mosquitto delivers one copy per matching subscription,
  so the bridge subscribes only to filters no other rule covers. Ten energy
  messages must reach the cloud once each, under ten sequence ids.
- A rule whose wildcard, after strip=, reaches a plant level starting with '$'
  must never produce a '$' cloud topic ($aws/..., $SYS/...): such a message is
  acknowledged, logged and counted as rejected, and never leaves.
- A whitelisted topic whose cloud topic is longer than 1,023 bytes is
  forwarded (there is no fixed buffer any more), not silently dropped.
"""
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld, bridge_conf  # noqa: E402


def example_rules():
    path = os.path.join(h.ROOT, "config", "bridge.example")
    with open(path) as f:
        return [l.split(None, 1)[1].strip() for l in f if l.startswith("forward ")]


NARROW_POLICY = """
default deny
unknown-devices refuse

role sensor
  publish plant/hq/+/+/telemetry/# qos<=1 retain=no
end

role bridge
  subscribe plant/hq/energy/+/telemetry/power qos<=1
  read      plant/hq/energy/+/telemetry/power
end

device m1 role sensor
device bridge-01 role bridge
"""


class PolicyWorld(BridgeWorld):
    """BridgeWorld, but the plant broker runs the plugin with `policy`."""

    def __init__(self, env, policy):
        self.env = env
        self.plant_pki = env.pki("plant")
        self.cloud_pki = env.pki("cloudpki")
        self.plant = env.plant_broker(self.plant_pki, policy=policy)
        self.cloud = env.cloud_broker(self.cloud_pki)
        self.queue_path = env.path("queue.db")
        self.bridge = None
        self.sub = None


class Rules(unittest.TestCase):
    def test_overlap_once_no_dollar_topic_no_length_limit(self):
        rules = example_rules()
        self.assertEqual(len(rules), 2, rules)
        rules.append("edge/+/dollar/# qos=1 strip=edge/")
        rules.append("long/# qos=1 prefix=sites/")
        with h.Env("br-rules") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("#")
            port = h.free_port()
            b = w.start_bridge(rules, extra="http_listen 127.0.0.1:%d\n" % port)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            pub = w.publisher()
            for i in range(10):
                self.assertTrue(pub.publish("plant/hq/energy/m%d/telemetry/power" % i, b"%d" % i,
                                            qos=1))
            self.assertTrue(pub.publish("plant/hq/line1/press-01/telemetry/temp", b"t", qos=1))
            self.assertTrue(pub.publish("edge/$aws/dollar/things/t1/shadow/update", b"s", qos=1))
            long_topic = "long/" + "/".join(["x" * 99] * 15)  # 1,504 bytes
            self.assertTrue(pub.publish(long_topic, b"long", qos=1))
            sub.wait_messages(12, 30)
            time.sleep(1.5)  # a second copy or a leak would have arrived by now
            got = sub.take()
            energy = sorted(m["topic"] for m in got if "/energy/" in m["topic"])
            self.assertEqual(energy, ["sites/hq/energy/m%d/telemetry/power" % i for i in range(10)],
                             "each energy message exactly once: %s" % energy)
            seqs = [m["props"]["plantgate-seq"] for m in got if "/energy/" in m["topic"]]
            self.assertEqual(len(set(seqs)), 10, seqs)
            self.assertIn("sites/hq/line1/press-01/telemetry/temp", [m["topic"] for m in got])
            longs = [m for m in got if m["topic"].startswith("sites/long/")]
            self.assertEqual(len(longs), 1, "the long topic was dropped: %s" % b.log()[-2000:])
            self.assertEqual(longs[0]["topic"], "sites/" + long_topic)
            self.assertFalse([m for m in got if m["topic"].startswith("$")], got)
            self.assertEqual(len(got), 12, [m["topic"][:60] for m in got])
            self.assertRegex(b.log(), r"event=plant\.rejected reason=cloud-topic-reserved "
                                      r"topic=\"?edge/\$aws/dollar/")
            # The example's rules are collapsed (covered filter not subscribed):
            # nothing left to warn about.
            self.assertNotIn("event=config.overlap", b.log())
            metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            m = re.search(rb"\nplantgate_bridge_messages_dropped_total\{reason=\"rejected\"\} (\d+)", metrics)
            self.assertIsNotNone(m, metrics[:3000])
            self.assertEqual(int(m.group(1)), 1)
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


    def test_check_mode_warns_overlap_and_refuses_dollar(self):
        with h.Env("br-rules-n") as env:
            w = BridgeWorld(env)
            base = bridge_conf(w, example_rules())
            ok = env.write("ok.conf", base)
            p = subprocess.run([h.bridge_path(), "-n", "-c", ok], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual((p.returncode, p.stdout.strip(), p.stderr), (0, "configuration OK", ""))
            # a/+/c and a/b/+ overlap and neither covers the other: a warning
            # naming both lines, but the configuration is valid.
            over = env.write("over.conf", base + "forward x/+/c qos=1\nforward x/b/+ qos=1\n")
            n = len(base.splitlines())
            p = subprocess.run([h.bridge_path(), "-n", "-c", over], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("%s:%d: warning: forward 'x/b/+' overlaps the rule at line %d ('x/+/c')"
                          % (over, n + 2, n + 1), p.stderr)
            # strip= leaving a '$' cloud topic: refused, with file:line.
            bad = env.write("bad.conf", base + "forward plant/$aws/things/# strip=plant/\n")
            p = subprocess.run([h.bridge_path(), "-n", "-c", bad], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn("%s:%d: strip='plant/' leaves cloud topics starting with '$aws/things/#'"
                          % (bad, n + 1), p.stderr)


    def test_refused_covering_filter_falls_back_to_what_it_covers(self):
        # The plant policy lets the bridge read only the energy topics: the
        # covering telemetry filter is refused (logged), and the energy rule's
        # own filter, left out because it was covered, is subscribed instead.
        with h.Env("br-rules-acl") as env:
            w = PolicyWorld(env, NARROW_POLICY)
            sub = w.cloud_subscriber("#")
            b = w.start_bridge(example_rules())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=plant\.subscribe_refused "
                                       r"filter=plant/hq/\+/\+/telemetry/# ", 10), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            # The fallback SUBSCRIBE reached the broker (logged as it arrives).
            self.assertTrue(w.plant.wait_log(r"\tplant/hq/energy/\+/telemetry/power \(QoS 1\)",
                                             10), w.plant.log()[-3000:])
            pub = env.client(w.plant_pki, "m1", w.plant)
            self.assertEqual(pub.connect(), 0)
            for i in range(5):
                self.assertTrue(pub.publish("plant/hq/energy/m1/telemetry/power", b"%d" % i, qos=1))
            got = sub.wait_messages(5, 20)
            time.sleep(1.0)
            got = sub.take()
            self.assertEqual([m["payload"] for m in got], [b"%d" % i for i in range(5)], b.log())
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
