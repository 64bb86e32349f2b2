"""The cloud link's own MQTT (raw mode: bridge/link.c link_raw_*, cloud.c
cloud_packet / cloud_publish, the codec bridge/mqttwire.c) against a scripted
cloud: once libmosquitto has connected, the bridge encodes its PUBLISHes,
parses what the cloud sends and does keepalive itself, and applies what the
CONNACK says.  Each test drives fakecloud.FakeCloud (MQTT 5 over mutual TLS
with the cloud PKI, so the bridge's TLS runs as in production) and looks at
the bytes it received:

  Receive Maximum caps the publishes in flight; the CONNECT announces Maximum
  Packet Size 65536; a CONNACK's Maximum Packet Size refuses bigger messages
  and nothing bigger is sent; PINGREQ on an idle link, a dropped connection
  when PINGRESP does not come; unasked PUBLISH (QoS 0, 1, 2) and PUBREL from
  the cloud answered, counted and dropped; a DISCONNECT's reason and Reason
  String in the log and the in-flight message sent again; a malformed packet
  is a protocol error and a reconnect; Retain Available 0 clears the retain
  flag."""
import os
import re
import sqlite3
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakecloud import (FakeCloud, mqtt_str, packet, parse_props,  # noqa: E402
                       parse_publish_packet, varint)
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
TOPIC = "plant/l1/telemetry/t"
IGNORED = re.compile(rb"\nplantgate_bridge_cloud_messages_ignored_total (\d+)\n")
# Packet types
CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, DISCONNECT = 1, 3, 4, 5, 6, 7, 12, 14


def u16(n):
    return n.to_bytes(2, "big")


def u32(n):
    return n.to_bytes(4, "big")


def varint_len(n):
    return len(varint(n))


def publish_size(topic, payload_len, seq):
    """Bytes of the bridge's MQTT 5 QoS 1 PUBLISH of one message without a
    signing key: topic, packet id, the user property plantgate-seq, payload."""
    props = 1 + 2 + len("plantgate-seq") + 2 + len(str(seq))
    remaining = 2 + len(topic) + 2 + varint_len(props) + props + payload_len
    return 1 + varint_len(remaining) + remaining


class ScriptedCloud(FakeCloud):
    """Acknowledges every QoS 1 PUBLISH except on the connections in
    `swallow` (their publishes are left for the test to acknowledge or not);
    records everything (FakeCloud)."""

    def __init__(self, pki, swallow=(), **kw):
        self.swallow = set(swallow)
        super().__init__(pki, **kw)

    def on_publish(self, index, topic, payload):
        return "swallow" if index in self.swallow else "ack"

    def publishes(self, index=None):
        return [parse_publish_packet(p.first, p.body) for p in self.of_kind(PUBLISH, index)]

    def payloads(self, index=None):
        return [m["payload"] for m in self.publishes(index)]


class CloudWire(unittest.TestCase):
    def start(self, env, make_cloud, rules=RULES, metrics=False):
        """Plant broker, the fake cloud make_cloud(pki), the bridge connected
        to both.  (world, cloud, bridge, metrics URL or None)."""
        w = BridgeWorld(env)
        cloud = make_cloud(w.cloud_pki)
        self.addCleanup(cloud.close)
        extra, url = "", None
        if metrics:
            port = h.free_port()
            extra = "http_listen 127.0.0.1:%d\n" % port
            url = "http://127.0.0.1:%d/metrics" % port
        b = w.start_bridge(rules, extra=extra, cloud_port=cloud.port)
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
        return w, cloud, b, url

    def assert_no_disconnect(self, b, cloud):
        self.assertNotIn("event=cloud.disconnected", b.log())
        self.assertEqual(cloud.n_connections, 1, b.log()[-3000:])

    def test_receive_maximum_caps_publishes_in_flight(self):
        # The cloud allows 3 in flight (drain_inflight is 50) and acknowledges
        # only once it holds all it may get: the bridge must stop at 3 each
        # time, go on when acknowledged, and deliver all 20 in order.
        n = 20
        with h.Env("br-wire-rmax") as env:
            w, cloud, b, _ = self.start(env, lambda pki: ScriptedCloud(
                pki, swallow={0}, connack_props=b"\x21" + u16(3)))
            pub = w.publisher()
            for i in range(n):
                self.assertTrue(pub.publish(TOPIC, b"v%d" % i, qos=1))
            acked, peak, rounds = 0, 0, 0
            deadline = time.monotonic() + 30 * h.SLOW
            while acked < n and time.monotonic() < deadline:
                want = min(3, n - acked)
                h.wait_for(lambda: len(cloud.of_kind(PUBLISH, 0)) - acked >= want, 10 * h.SLOW)
                time.sleep(0.3)  # a bridge ignoring the maximum sends more meanwhile
                got = cloud.publishes(0)
                unacked = got[acked:]
                peak = max(peak, len(unacked))
                self.assertLessEqual(len(unacked), 3, "%d unacknowledged publishes in flight with "
                                     "Receive Maximum 3; log:\n%s"
                                     % (len(unacked), b.log()[-3000:]))
                self.assertEqual(len(unacked), want, "round %d: the bridge sent %d of %d allowed"
                                 % (rounds, len(unacked), want))
                for m in unacked:
                    cloud.send(0, b"\x40\x02" + u16(m["mid"]))
                acked += len(unacked)
                rounds += 1
            self.assertEqual(peak, 3)
            self.assertEqual(cloud.payloads(0), [b"v%d" % i for i in range(n)])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW),
                            "queue still holds %d" % w.queue_count())
            self.assert_no_disconnect(b, cloud)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_connect_is_mqtt5_with_maximum_packet_size(self):
        with h.Env("br-wire-connect") as env:
            _, cloud, b, _ = self.start(env, ScriptedCloud)
            body = cloud.connects[0]
            self.assertEqual(body[:6], mqtt_str("MQTT"))
            self.assertEqual(body[6], 5, "protocol level")
            self.assertEqual(int.from_bytes(body[8:10], "big"), 5, "keepalive (cloud_keepalive 5s)")
            props, _ = parse_props(body, 10)
            self.assertEqual([v for k, v in props if k == 0x27], [65536], props)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_maximum_packet_size_refuses_bigger_messages(self):
        # The cloud takes packets of at most 200 bytes: a message of exactly
        # 200 goes, one of 201 and a big one are refused and set aside in the
        # dead-letter table (not deleted), the messages after them go.
        limit = 200
        with h.Env("br-wire-maxpkt") as env:
            w, cloud, b, _ = self.start(env, lambda pki: ScriptedCloud(
                pki, connack_props=b"\x27" + u32(limit)))
            pub = w.publisher()
            self.assertTrue(pub.publish(TOPIC, b"s0", qos=1))
            self.assertTrue(h.wait_for(lambda: cloud.publishes(0), 10 * h.SLOW), b.log())
            first = cloud.publishes(0)[0]
            seq = int(first["user"]["plantgate-seq"])
            # publish_size() is the bridge's encoding: check it on what arrived.
            self.assertEqual(cloud.of_kind(PUBLISH, 0)[0].size, publish_size(TOPIC, 2, seq))
            fit = next(p for p in range(1, limit) if publish_size(TOPIC, p, seq + 1) == limit)
            over = next(p for p in range(1, limit) if publish_size(TOPIC, p, seq + 2) == limit + 1)
            self.assertTrue(pub.publish(TOPIC, b"f" * fit, qos=1))        # seq + 1: exactly 200
            self.assertTrue(pub.publish(TOPIC, b"o" * over, qos=1))       # seq + 2: 201
            self.assertTrue(pub.publish(TOPIC, b"B" * 1000, qos=1))       # seq + 3
            self.assertTrue(pub.publish(TOPIC, b"s1", qos=1))             # seq + 4
            self.assertTrue(h.wait_for(lambda: len(cloud.publishes(0)) >= 3, 10 * h.SLOW),
                            b.log()[-3000:])
            for s in (seq + 2, seq + 3):
                self.assertTrue(b.wait_log(r"event=cloud\.refused seq=%d " % s, 5), b.log()[-3000:])
            time.sleep(0.5)  # anything else that might come would have by now
            self.assertEqual(cloud.payloads(0), [b"s0", b"f" * fit, b"s1"])
            self.assertEqual(cloud.of_kind(PUBLISH, 0)[1].size, limit)
            sizes = [p.size for p in cloud.packets if p.kind != CONNECT]
            self.assertLessEqual(max(sizes), limit, sizes)
            self.assertNotIn("event=cloud.refused seq=%d " % (seq + 1), b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            with sqlite3.connect(w.queue_path) as db:
                dead = db.execute("SELECT seq, length(payload), reason FROM dead_letter ORDER BY seq").fetchall()
            self.assertEqual([(s, n) for s, n, _ in dead], [(seq + 2, over), (seq + 3, 1000)])
            self.assertIn("the cloud cannot take it", dead[0][2])
            self.assert_no_disconnect(b, cloud)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_keepalive_pingreq_and_timeout(self):
        # cloud_keepalive 5s (its minimum).  An idle link sends PINGREQ every
        # 5 s and stays up while answered; unanswered, the connection is
        # dropped a keepalive after the PINGREQ, and the bridge reconnects.
        with h.Env("br-wire-keepalive") as env:
            _, cloud, b, _ = self.start(env, ScriptedCloud)
            up = cloud.of_kind(CONNECT, 0)[0].at
            self.assertTrue(h.wait_for(lambda: len(cloud.of_kind(PINGREQ, 0)) >= 2, 15),
                            b.log()[-3000:])
            time.sleep(max(0.0, up + 12.5 - time.monotonic()))  # 2.5 keepalives
            pings = [p.at for p in cloud.of_kind(PINGREQ, 0)]
            self.assertIn(len(pings), (2, 3), pings)
            gaps = [b_ - a for a, b_ in zip([up] + pings, pings)]
            self.assertTrue(all(4.0 <= g <= 7.0 for g in gaps), gaps)
            self.assert_no_disconnect(b, cloud)
            self.assertNotIn(0, cloud.closed_at)
            # Now the cloud stays silent.
            cloud.answer_pingreq = False
            n = len(pings)
            self.assertTrue(h.wait_for(lambda: len(cloud.of_kind(PINGREQ, 0)) > n, 7),
                            b.log()[-3000:])
            unanswered = cloud.of_kind(PINGREQ, 0)[n].at
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected reason=\"keepalive timeout", 9),
                            b.log()[-3000:])
            cloud.answer_pingreq = True
            self.assertTrue(h.wait_for(lambda: 0 in cloud.closed_at, 5))
            waited = cloud.closed_at[0] - unanswered
            self.assertTrue(4.0 <= waited <= 7.0, "dropped %.1f s after the PINGREQ" % waited)
            self.assertTrue(h.wait_for(lambda: cloud.n_connections >= 2, 10), b.log()[-3000:])
            self.assertTrue(b.wait_log(r"(?s)cloud\.disconnected.*event=cloud\.connected", 10),
                            b.log()[-3000:])
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_unasked_publishes_answered_counted_dropped(self):
        with h.Env("br-wire-unasked") as env:
            w, cloud, b, url = self.start(env, ScriptedCloud, metrics=True)

            def ignored():
                return int(IGNORED.search(urllib.request.urlopen(url, timeout=5).read()).group(1))

            plant = w.publisher()
            self.assertEqual(plant.subscribe("#", 1), [1])
            before = ignored()
            body = mqtt_str("cloud/cmd")
            cloud.send(0, packet(0x30, body + b"\x00" + b"q0"))
            cloud.send(0, packet(0x32, body + u16(0x1234) + b"\x00" + b"q1"))
            cloud.send(0, packet(0x34, body + u16(0x2345) + b"\x00" + b"q2"))
            self.assertTrue(h.wait_for(lambda: cloud.of_kind(PUBACK, 0), 5), b.log()[-3000:])
            self.assertEqual([(p.first, p.body) for p in cloud.of_kind(PUBACK, 0)],
                             [(0x40, u16(0x1234))])
            self.assertTrue(h.wait_for(lambda: cloud.of_kind(PUBREC, 0), 5), b.log()[-3000:])
            self.assertEqual([(p.first, p.body) for p in cloud.of_kind(PUBREC, 0)],
                             [(0x50, u16(0x2345))])
            cloud.send(0, b"\x62\x02" + u16(0x2345))  # PUBREL
            self.assertTrue(h.wait_for(lambda: cloud.of_kind(PUBCOMP, 0), 5), b.log()[-3000:])
            self.assertEqual([(p.first, p.body) for p in cloud.of_kind(PUBCOMP, 0)],
                             [(0x70, u16(0x2345))])
            self.assertTrue(h.wait_for(lambda: ignored() == before + 3, 5),
                            "ignored %d -> %d" % (before, ignored()))
            # Relaying goes on, on the same connection.
            self.assertTrue(plant.publish(TOPIC, b"after", qos=1))
            self.assertTrue(h.wait_for(lambda: b"after" in cloud.payloads(0), 10 * h.SLOW),
                            b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            time.sleep(0.3)
            self.assertEqual(ignored(), before + 3)
            # Nothing from the cloud reached the plant.
            self.assertEqual([m["topic"] for m in plant.take()], [TOPIC])
            self.assert_no_disconnect(b, cloud)
            self.assertNotIn("protocol error", b.log())
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_disconnect_reason_logged_and_message_resent(self):
        with h.Env("br-wire-disconnect") as env:
            w, cloud, b, _ = self.start(env, lambda pki: ScriptedCloud(pki, swallow={0}))
            pub = w.publisher()
            self.assertTrue(pub.publish(TOPIC, b"d0", qos=1))
            self.assertTrue(h.wait_for(lambda: cloud.publishes(0), 10 * h.SLOW), b.log())
            seq = cloud.publishes(0)[0]["user"]["plantgate-seq"]
            props = b"\x1f" + mqtt_str("over quota")
            cloud.send(0, packet(0xE0, b"\x97" + varint(len(props)) + props))
            # At once (the stall detector would only drop it after 10 s).
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected ", 3), b.log()[-3000:])
            # The bridge closes the connection itself, reconnects, sends again.
            self.assertTrue(h.wait_for(lambda: 0 in cloud.closed_at, 5))
            self.assertTrue(h.wait_for(lambda: cloud.publishes(1), 10 * h.SLOW), b.log()[-3000:])
            again = cloud.publishes(1)[0]
            self.assertEqual((again["payload"], again["user"]["plantgate-seq"]), (b"d0", seq))
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            self.assertEqual(cloud.n_connections, 2)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            # One quoted value: the reason string, a colon, the Reason String.
            m = re.search(r"event=cloud\.disconnected reason=(.*) unacked=1 ", b.log())
            self.assertIsNotNone(m, b.log()[-3000:])
            self.assertEqual(m.group(1), '"Quota exceeded: over quota"', m.group(0))

    def test_malformed_packets_are_protocol_errors(self):
        # Connection 0: a PUBACK with flags 0x2 for the message in flight (a
        # bridge that took it would delete a message the cloud never
        # acknowledged).  Connection 1: a remaining length of 5 bytes.
        # Connection 2 acknowledges: all five arrive.
        with h.Env("br-wire-malformed") as env:
            w, cloud, b, _ = self.start(env, lambda pki: ScriptedCloud(pki, swallow={0, 1}))
            pub = w.publisher()
            for i in range(5):
                self.assertTrue(pub.publish(TOPIC, b"m%d" % i, qos=1))
            self.assertTrue(h.wait_for(lambda: len(cloud.publishes(0)) >= 5, 10 * h.SLOW), b.log())
            cloud.send(0, b"\x42\x02" + u16(cloud.publishes(0)[0]["mid"]))
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected reason=\"protocol error: the "
                                       r"cloud sent a malformed or unexpected PUBACK packet\"", 10),
                            b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: cloud.publishes(1), 10 * h.SLOW), b.log()[-3000:])
            cloud.send(1, b"\x40\xff\xff\xff\xff\x01")
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected reason=\"protocol error: the "
                                       r"cloud sent a malformed packet length\"", 10),
                            b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: len(cloud.publishes(2)) >= 5, 15 * h.SLOW),
                            b.log()[-3000:])
            self.assertEqual(cloud.payloads(2), [b"m%d" % i for i in range(5)])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            self.assertEqual(b.log().count("event=cloud.disconnected"), 2, b.log()[-3000:])
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    def test_retain_unavailable_clears_the_retain_flag(self):
        # The rule keeps retain (plant.c: retain only with the rule's option).
        # Connection 0 has no Retain Available: the flag arrives; connection 1
        # says Retain Available 0: it arrives cleared.
        class RetainCloud(ScriptedCloud):
            def connack(self, index):
                p = b"" if index == 0 else b"\x25\x00"
                return packet(0x20, b"\x00\x00" + varint(len(p)) + p)

        with h.Env("br-wire-retain") as env:
            w, cloud, b, _ = self.start(env, RetainCloud, rules=[RULES[0] + " retain"])
            pub = w.publisher()
            self.assertTrue(pub.publish(TOPIC, b"r0", qos=1, retain=True))
            self.assertTrue(h.wait_for(lambda: cloud.publishes(0), 10 * h.SLOW), b.log())
            self.assertEqual([(m["payload"], m["retain"]) for m in cloud.publishes(0)], [(b"r0", True)])
            cloud.send(0, packet(0xE0, b"\x00\x00"))  # normal disconnection: reconnect
            self.assertTrue(h.wait_for(lambda: cloud.of_kind(CONNECT, 1), 10 * h.SLOW), b.log())
            self.assertTrue(b.wait_log(r"(?s)cloud\.disconnected.*event=cloud\.connected", 10),
                            b.log()[-3000:])
            self.assertTrue(pub.publish(TOPIC, b"r1", qos=1, retain=True))
            self.assertTrue(h.wait_for(lambda: cloud.publishes(1), 10 * h.SLOW), b.log())
            self.assertEqual([(m["payload"], m["retain"]) for m in cloud.publishes(1)], [(b"r1", False)])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10 * h.SLOW))
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
