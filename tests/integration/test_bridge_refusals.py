"""A message the cloud refuses is never deleted.

An MQTT 5 cloud answers a PUBLISH it will not take with a PUBACK whose
reason code is >= 0x80.  Before, the bridge deleted such a message ("so it
does not block the queue"): a cloud policy that denied the bridge's topics
for an hour, or a quota (AWS IoT and Azure IoT Hub answer 0x97 Quota
exceeded when a client sends faster than allowed), destroyed the plant's
data.  Now (bridge/cloud.c, cloud_refused):

- Quota exceeded (0x97) and Packet Identifier in use (0x91): the message is
  kept and sent again after a pause (reconnect_min, doubling to
  reconnect_max); never set aside;
- Unspecified error (0x80) and Implementation specific error (0x83): sent
  again, set aside in the dead-letter table after dead_letter_after
  refusals in a row;
- the rest (Not authorized 0x87, ...): set aside at once, so the messages
  behind it are not held up; replayable once the cloud takes it;
- a cloud that refuses everything: after 10 dead letters in a row the
  bridge keeps every message queued and sends again after a pause, until
  the cloud accepts.
The fake cloud here is the small MQTT 5 server of fakecloud.py."""
import os
import re
import sqlite3
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakecloud import FakeCloud  # noqa: E402
from test_bridge_deadletter import deadletter  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402
from test_bridge_status_page import _WsClient  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
TOPIC = "plant/l1/telemetry/t"


class RefusingCloud(FakeCloud):
    """Answers each PUBLISH with the reason code refuse(topic, payload, n)
    returns (n: how many times this payload came before), or accepts it
    when that is None.  Records every arrival and what it accepted."""

    def __init__(self, pki, refuse):
        self.refuse = refuse
        self.arrivals = []  # (monotonic time, payload, reason code or 0)
        self.accepted = []  # payloads, in the order accepted
        super().__init__(pki)

    def on_publish(self, index, topic, payload):
        with self.lock:
            n = sum(1 for _, p, _ in self.arrivals if p == payload)
            code = self.refuse(topic, payload, n)
            self.arrivals.append((time.monotonic(), payload, code or 0))
            if code is None:
                self.accepted.append(payload)
                return "ack"
            return code

    def times(self, payload):
        with self.lock:
            return [(t, c) for t, p, c in self.arrivals if p == payload]


def metrics(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return {k: float(v) for k, v in re.findall(r"^(plantgate_bridge_[a-z_]+(?:\{[^}]*\})?) (\S+)$",
                                                  text, re.M)}


def dead_rows(w):
    with sqlite3.connect(w.queue_path) as db:
        return db.execute("SELECT payload, attempts, reason FROM dead_letter ORDER BY seq").fetchall()


class Refusals(unittest.TestCase):
    def start(self, env, refuse, extra=""):
        w = BridgeWorld(env)
        cloud = RefusingCloud(w.cloud_pki, refuse)
        self.addCleanup(cloud.close)
        port = h.free_port()
        b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n" % port + extra,
                           cloud_port=cloud.port)
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected .*protocol=5", 15), b.log())
        return w, cloud, b, port

    def test_not_authorized_is_set_aside_not_deleted_and_replayable(self):
        # One message on a topic the cloud's policy denies (0x87), two the
        # cloud fails on every time (0x83, each set aside after
        # dead_letter_after 3 refusals: counted for the oldest refused, so two
        # in one window do not reset each other's count), 20 the cloud takes.
        allow = {"all": False}

        def refuse(topic, payload, n):
            if payload == b"denied" and not allow["all"]:
                return 0x87
            if payload.startswith(b"flaky"):
                return 0x83
            return None

        with h.Env("br-refused") as env:
            w, cloud, b, port = self.start(env, refuse, "dead_letter_after 3\n")
            pub = w.publisher()
            self.assertTrue(pub.publish(TOPIC, b"denied", qos=1))
            self.assertTrue(pub.publish(TOPIC, b"flaky", qos=1))
            self.assertTrue(pub.publish(TOPIC, b"flaky2", qos=1))
            for i in range(20):
                self.assertTrue(pub.publish(TOPIC, b"v%d" % i, qos=1))
            self.assertTrue(h.wait_for(lambda: len(dead_rows(w)) == 3, 20 * h.SLOW), b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW), b.log()[-3000:])
            # Every good message once; the denied one sent once, the flaky one 3 times.
            self.assertEqual(sorted(cloud.accepted), sorted(b"v%d" % i for i in range(20)))
            self.assertEqual([c for _, c in cloud.times(b"denied")], [0x87])
            self.assertEqual([c for _, c in cloud.times(b"flaky")], [0x83] * 3)
            self.assertGreaterEqual(len(cloud.times(b"flaky2")), 3)
            dead = dead_rows(w)
            self.assertEqual([(p, a) for p, a, _ in dead], [(b"denied", 1), (b"flaky", 3), (b"flaky2", 3)])
            self.assertIn("Not authorized (0x87)", dead[0][2])
            self.assertIn("(0x83)", dead[1][2])
            self.assertRegex(b.log(), r"event=cloud\.refused seq=\d+ topic=\S+ attempts=1 "
                                      r"reason=\"the cloud refused it: Not authorized \(0x87\)\" "
                                      r"action=\"moved to the dead-letter table; sending goes on\" "
                                      r"inspect=\"plantgate-bridge deadletter show \d+ -c ")
            m = metrics(port)
            self.assertEqual(m["plantgate_bridge_cloud_refusals_total"],
                             1 + len(cloud.times(b"flaky")) + len(cloud.times(b"flaky2")))
            self.assertEqual(m["plantgate_bridge_dead_letters_total"], 3)
            self.assertEqual(m["plantgate_bridge_messages_delivered_total"], 20)
            self.assertNotIn('plantgate_bridge_messages_dropped_total{reason="cloud_refused"}', m)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            # The cloud's policy is fixed: the operator replays, all arrive.
            allow["all"] = True
            p = deadletter(os.path.join(env.tmp, "bridge.conf"), "replay", "all")
            self.assertEqual(p.returncode, 0, p.stderr)
            b = w.start_bridge(RULES, extra="dead_letter_after 3\n", name="bridge2", cloud_port=cloud.port)
            self.assertTrue(h.wait_for(lambda: b"denied" in cloud.accepted, 15 * h.SLOW), b.log()[-3000:])
            # the flaky ones still fail: set aside again
            self.assertTrue(h.wait_for(lambda: [p for p, _, _ in dead_rows(w)] == [b"flaky", b"flaky2"],
                                       20 * h.SLOW), b.log()[-3000:])
            self.assertEqual([a for _, a, _ in dead_rows(w)], [3, 3])
            self.assertEqual(w.queue_count(), 0)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_quota_exceeded_is_sent_again_after_a_pause_nothing_lost(self):
        # The cloud refuses everything with 0x97 Quota exceeded for its first
        # 40 publishes (what AWS IoT and Azure IoT Hub do when a client is over
        # its rate), then takes everything.
        state = {"refusals": 0}

        def refuse(topic, payload, n):
            if state["refusals"] < 40:
                state["refusals"] += 1
                return 0x97
            return None

        with h.Env("br-quota") as env:
            w, cloud, b, port = self.start(env, refuse)
            pub = w.publisher()
            N = 60
            for i in range(N):
                self.assertTrue(pub.publish(TOPIC, b"q%d" % i, qos=1))
            self.assertTrue(h.wait_for(lambda: len(cloud.accepted) >= N, 30 * h.SLOW),
                            "accepted %d of %d\n%s" % (len(cloud.accepted), N, b.log()[-3000:]))
            time.sleep(0.5)  # a duplicate would have come by now
            self.assertEqual(sorted(cloud.accepted), sorted(b"q%d" % i for i in range(N)),
                             "each message accepted exactly once")
            self.assertEqual(dead_rows(w), [], "a quota never sets a message aside")
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            # Sent again only after the pause (reconnect_min 200ms), on the
            # same connection (a refusal is not a broken link).
            first = cloud.times(b"q0")
            self.assertGreaterEqual(len(first), 2, first)
            self.assertEqual(first[0][1], 0x97)
            self.assertGreaterEqual(first[1][0] - first[0][0], 0.19, first)
            self.assertEqual(len(cloud.connects), 1, "the bridge reconnected")
            self.assertRegex(b.log(), r"event=cloud\.refused seq=\d+ reason=\"the cloud refused it: "
                                      r"Quota exceeded \(0x97\)\" refused_since_last_line=\d+ "
                                      r"action=\"kept in the queue; sending again in \d+ ms\" "
                                      r"hint=\"the cloud's rate limit or quota")
            # One line per pause, not one per refused message, and one when it ends.
            self.assertLess(b.log().count("event=cloud.refused "), 40)
            self.assertEqual(b.log().count("event=cloud.refusals_ended "), 1, b.log()[-3000:])
            m = metrics(port)
            self.assertEqual(m["plantgate_bridge_cloud_refusal_pause_seconds"], 0)  # taking again
            self.assertEqual(m["plantgate_bridge_cloud_refusals_total"], 40)
            self.assertEqual(m["plantgate_bridge_messages_delivered_total"], N)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_server_side_disconnects_do_not_set_a_message_aside(self):
        # A cloud restarting node after node closes the connection with
        # DISCONNECT 0x8B Server shutting down while a message is in flight,
        # 7 times in a row: more than dead_letter_after (5), but the reason
        # speaks of the server, not the message, so nothing is set aside.
        # (A close without a reason still counts: test_bridge_deadletter.)
        state = {"drops": 0}

        class Restarting(RefusingCloud):
            def on_publish(self, index, topic, payload):
                with self.lock:
                    if state["drops"] < 7:
                        state["drops"] += 1
                        self.arrivals.append((time.monotonic(), payload, 0x8B))
                        return ("disconnect", 0x8B)
                return super().on_publish(index, topic, payload)

        with h.Env("br-restarting") as env:
            w = BridgeWorld(env)
            cloud = Restarting(w.cloud_pki, lambda t, p, n: None)
            self.addCleanup(cloud.close)
            b = w.start_bridge(RULES, cloud_port=cloud.port)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = w.publisher()
            for i in range(3):
                self.assertTrue(pub.publish(TOPIC, b"r%d" % i, qos=1))
            self.assertTrue(h.wait_for(lambda: len(cloud.accepted) >= 3, 30 * h.SLOW), b.log()[-3000:])
            self.assertEqual(sorted(cloud.accepted), [b"r0", b"r1", b"r2"])
            self.assertGreaterEqual(len(cloud.connects), 8)
            self.assertEqual(dead_rows(w), [])
            self.assertNotIn("event=cloud.dead_letter ", b.log())
            self.assertIn('reason="Server shutting down"', b.log())
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_a_refused_suspect_does_not_keep_the_window_at_one(self):
        # The connection closes (no reason) when "s" arrives: "s" becomes the
        # suspect and is sent alone after the reconnect.  The cloud then
        # answers it, with a refusal (0x97, for good here): an answer proves
        # it does not break the connection, so the window opens again and
        # the 30 messages behind it go together, not one per round trip.
        from fakecloud import parse_publish
        state = {"closed": False}

        def refuse(topic, payload, n):
            return 0x97 if payload == b"s" else None

        class ClosesOnce(RefusingCloud):
            def on_publish(self, index, topic, payload):
                with self.lock:
                    if payload == b"s" and not state["closed"]:
                        state["closed"] = True
                        return "close"
                return super().on_publish(index, topic, payload)

        with h.Env("br-suspect-refused") as env:
            w = BridgeWorld(env)
            cloud = ClosesOnce(w.cloud_pki, refuse)
            self.addCleanup(cloud.close)
            b = w.start_bridge(RULES, cloud_port=cloud.port)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish(TOPIC, b"s", qos=1))
            for i in range(30):
                self.assertTrue(pub.publish(TOPIC, b"m%d" % i, qos=1))
            self.assertTrue(h.wait_for(lambda: len(cloud.accepted) >= 30, 30 * h.SLOW), b.log()[-3000:])
            self.assertEqual(sorted(cloud.accepted), sorted(b"m%d" % i for i in range(30)))
            with cloud.lock:
                later = [p for p in cloud.packets if p.kind == 3 and p.index > 0]
                reads = {(p.index, p.read) for p in later
                         if parse_publish(p.body, (p.first >> 1) & 3)[2].startswith(b"m")}
                n = sum(1 for p in later if parse_publish(p.body, (p.first >> 1) & 3)[2].startswith(b"m"))
            self.assertLess(len(reads), n, "%d messages in %d reads: sent one at a time" % (n, len(reads)))
            self.assertEqual(dead_rows(w), [])
            self.assertEqual(w.queue_count(), 1)  # "s", kept: quota refusals never set a message aside
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_a_cloud_refusing_everything_does_not_empty_the_queue(self):
        # A policy that lost the bridge's grant: every publish 0x87.  After
        # 10 dead letters in a row the bridge keeps the rest queued and sends
        # again after a pause; once the cloud accepts, they all arrive.
        state = {"healed": False}

        def refuse(topic, payload, n):
            return None if state["healed"] else 0x87

        with h.Env("br-refuse-all") as env:
            w, cloud, b, port = self.start(env, refuse)
            pub = w.publisher()
            for i in range(30):
                self.assertTrue(pub.publish(TOPIC, b"a%d" % i, qos=1))
            self.assertTrue(b.wait_log(r"event=cloud\.dead_letter_held seq=\d+ dead_letters_in_a_row=10 "
                                       r"action=\"not setting more messages aside; sending them again "
                                       r"after a pause\"", 20), b.log()[-3000:])
            time.sleep(1.5)  # several pauses: still nothing more set aside, nothing deleted
            self.assertGreater(metrics(port)["plantgate_bridge_cloud_refusal_pause_seconds"], 0)
            # The status page gets it too (its Attention line says the cloud refuses).
            ws = _WsClient("ws://127.0.0.1:%d/ws" % port)
            try:
                pauses = []
                for _ in range(5):
                    pauses = re.findall(r'"refusal_pause_ms":(\d+)', ws.recv())
                    if pauses:
                        break
            finally:
                ws.close()
            self.assertTrue(pauses and int(pauses[-1]) >= 200, pauses)
            self.assertEqual(len(dead_rows(w)), 10)
            self.assertEqual(w.queue_count(), 20)
            again = [p for _, p, _ in cloud.arrivals]
            self.assertGreater(len(again), 30, "the kept messages are sent again")
            state["healed"] = True
            self.assertTrue(h.wait_for(lambda: len(cloud.accepted) >= 20, 20 * h.SLOW), b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            self.assertEqual(sorted(cloud.accepted), sorted(b"a%d" % i for i in range(10, 30)))
            self.assertTrue(b.wait_log(r"event=cloud\.dead_letter_resumed", 5))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
