"""A crash of the plant broker (kill -9) does not lose the bridge's session,
with the persistence settings of the shipped config/mosquitto.conf.

What mosquitto can keep: its state as of its last save, written every
`autosave_interval` seconds.  So the bridge's persistent session (its
subscriptions) survives once it has existed for one interval, and so does
every message queued for it that the broker accepted before the last save.
What mosquitto cannot keep: messages it accepted after its last save; a
crash loses those, in the broker itself, before the bridge ever saw them.

The test asserts exactly that promise: with the bridge stopped (SIGSTOP),
messages published more than one interval before the kill (B) and messages
published after the restart but before the bridge is back (D) all reach the
cloud; only the last batch before the kill (C, accepted after the last save)
may be lost, and the test reports how many were.  With the old shipped file
(no autosave_interval: mosquitto's default of 1800 s) the session was gone
after the crash, and B and D were lost.
"""
import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
TOPIC = "plant/l1/telemetry/t"
BATCH = 300


def shipped_persistence(env):
    """The persistence lines of config/mosquitto.conf, with the location in env."""
    lines, interval = [], 1800  # mosquitto's default when the file says nothing
    with open(os.path.join(h.ROOT, "config", "mosquitto.conf")) as f:
        for line in f:
            line = line.strip()
            m = re.match(r"(persistence|persistence_location|autosave_interval|"
                         r"autosave_on_changes)\s+(\S+)$", line)
            if not m:
                continue
            if m.group(1) == "persistence_location":
                line = "persistence_location %s/" % env.tmp
            if m.group(1) == "autosave_interval":
                interval = int(m.group(2))
            lines.append(line)
    return "\n".join(lines) + "\n", interval


def publish(pub, start, n):
    for i in range(start, start + n):
        assert pub.publish(TOPIC, json.dumps({"n": i}), qos=1), "publish %d was not acknowledged" % i


class PlantBrokerCrash(unittest.TestCase):
    def test_kill9_keeps_session_and_what_was_saved(self):
        with h.Env("br-broker-crash") as env:
            persist, interval = shipped_persistence(env)
            self.assertIn("persistence true", persist)
            self.assertLessEqual(interval, 30, "the shipped autosave_interval is too long for this test")
            w = BridgeWorld(env, plant_extra=persist)
            sub = w.cloud_subscriber("#")
            b = w.start_bridge(RULES)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            time.sleep(interval + 1.5)  # the bridge's session is saved
            pub = w.publisher("press-01")
            publish(pub, 0, BATCH)  # A: relayed at once
            sub.wait_unique(lambda m: json.loads(m["payload"])["n"], BATCH)

            b.signal(signal.SIGSTOP)  # the bridge is away: the broker queues for it
            self.addCleanup(b.signal, signal.SIGCONT)
            publish(pub, BATCH, BATCH)  # B: queued, then saved
            time.sleep(interval + 1.5)
            publish(pub, 2 * BATCH, BATCH)  # C: accepted after the last save
            w.plant.kill()
            w.plant.start()
            pub2 = w.publisher("press-02")
            publish(pub2, 3 * BATCH, BATCH)  # D: after the restart, before the bridge is back
            b.signal(signal.SIGCONT)
            self.assertTrue(b.wait_log(r"event=plant\.connected .*session_present=1", 30),
                            b.log()[-3000:])

            need = set(range(0, 2 * BATCH)) | set(range(3 * BATCH, 4 * BATCH))

            def have():
                return set(json.loads(m["payload"])["n"] for m in list(sub.messages))
            h.wait_progress(lambda: len(have() & need), len(need), stall=15)
            time.sleep(1.0)  # whatever survived of C arrives with the rest
            got = have()
            lost_c = sorted(set(range(2 * BATCH, 3 * BATCH)) - got)
            h.log("kill -9 with autosave_interval %d: A, B, D (%d messages) all delivered; "
                  "%d of the %d published in the last second before the kill lost by mosquitto"
                  % (interval, len(need), len(lost_c), BATCH))
            self.assertEqual(sorted(need - got), [], b.log()[-3000:])
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
