"""The plant link's own MQTT (raw mode: bridge/plant.c plant_packet,
plant_publish, subscribe_all, plant_suback; bridge/link.c link_raw_*; the
codec bridge/mqttwire.c) against a scripted plant broker: once libmosquitto
has connected, the bridge encodes its SUBSCRIBEs and UNSUBSCRIBEs, frames
what the plant broker sends, keeps each PUBACK back until its message is
committed to the SQLite queue, and does keepalive itself.  Each test drives
FakePlant (fakecloud.FakeCloud with a plant broker's answers: MQTT 5 over
mutual TLS with the plant PKI BridgeWorld makes, so the bridge's TLS runs as
in production) and looks at the bytes it received and at the queue file:

  one filter per SUBSCRIBE with options 0x19, distinct packet ids, covered
  filters unsubscribed, and subscribed after all when the broker refuses the
  filter covering them; every PUBACK leaves only after its message is in the
  queue (checked as each PUBACK arrives, with slow commits); a burst's PUBACKs
  leave in few TLS records; a redelivery (DUP, same packet id and content) is
  acknowledged and not stored twice, a first delivery of the same content is;
  the plantgate-device property is trusted only when it is the only one; a
  300 KiB message is taken and no Maximum Packet Size is announced; protocol
  errors (QoS 2, topic alias, wildcard or invalid UTF-8 topic, broken
  remaining length, unexpected packet) drop the connection without a PUBACK
  and the bridge reconnects; PINGREQ on an idle link, a dropped connection
  when PINGRESP does not come; a reload that removes a rule unsubscribes its
  filter on the live connection.

Cases that look at the queue point the bridge at a cloud port nobody listens
on, so what was stored stays there; the others relay to a real cloud
mosquitto."""
import contextlib
import os
import re
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakecloud import FakeCloud, mqtt_str, packet, parse_props, varint  # noqa: E402
from test_bridge_relay import BRIDGE_ID, BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
TOPIC = "plant/l1/telemetry/t"
REDELIVERED = re.compile(rb"\nplantgate_bridge_plant_redelivered_total (\d+)\n")
# Packet types
(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ,
 DISCONNECT) = 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 14
# Subscription options the bridge asks for (MQTT 5): QoS 1, Retain As
# Published (0x08), Retain Handling 1 (0x10: retained messages only for a new
# subscription).
SUB_OPTIONS = 0x19


def u16(n):
    return n.to_bytes(2, "big")


def user_prop(k, v):
    return b"\x26" + mqtt_str(k) + mqtt_str(v)


def publish(topic, mid, payload, qos=1, dup=False, props=b""):
    """An MQTT 5 PUBLISH from the plant broker; topic str or raw bytes."""
    first = 0x30 | qos << 1 | (0x08 if dup else 0)
    body = mqtt_str(topic) + (u16(mid) if qos else b"") + varint(len(props)) + props + payload
    return packet(first, body)


def parse_subscribe(body, unsubscribe):
    """(packet id, [(filter, options or None)], property list) of an MQTT 5
    SUBSCRIBE or UNSUBSCRIBE body."""
    mid = int.from_bytes(body[0:2], "big")
    props, pos = parse_props(body, 2)
    entries = []
    while pos < len(body):
        n = int.from_bytes(body[pos:pos + 2], "big")
        f = bytes(body[pos + 2:pos + 2 + n]).decode()
        pos += 2 + n
        opt = None
        if not unsubscribe:
            opt = body[pos]
            pos += 1
        entries.append((f, opt))
    if pos != len(body) or not entries:
        raise ValueError("malformed %s" % ("UNSUBSCRIBE" if unsubscribe else "SUBSCRIBE"))
    return mid, entries, props


def connect_props(body):
    """The property list of an MQTT 5 CONNECT body."""
    assert body[:6] == mqtt_str("MQTT") and body[6] == 5, body[:8]
    props, _ = parse_props(body, 10)
    return props


class FakePlant(FakeCloud):
    """A plant broker for the bridge, scripted by the test (which sends the
    PUBLISHes itself with send()).  Answers SUBSCRIBE with a SUBACK (0x87 Not
    authorized for a filter in `refuse`, else granted QoS 1) and UNSUBSCRIBE
    with an UNSUBACK; its CONNACK says session present on the connections in
    `session_present`; it answers the first `pings` PINGREQs of a connection
    (None: all).  on_puback(index, mid, time of arrival) is called on the
    connection's own thread as soon as a PUBACK has been read, before the
    next read."""

    def __init__(self, pki, refuse=(), session_present=(), pings=None, on_puback=None):
        self.refuse = set(refuse)
        self.session_present = set(session_present)
        self.pings = pings
        self.puback_hook = on_puback
        self._pinged = {}
        super().__init__(pki)

    def connack(self, index):
        flags = 1 if index in self.session_present else 0
        return packet(0x20, bytes([flags, 0]) + varint(0))

    def on_packet(self, index, pkt):
        if pkt.kind == SUBSCRIBE:
            mid, entries, _ = parse_subscribe(pkt.body, False)
            codes = bytes(0x87 if f in self.refuse else 0x01 for f, _ in entries)
            self.send(index, packet(0x90, u16(mid) + varint(0) + codes))
            return True
        if pkt.kind == UNSUBSCRIBE:
            mid, entries, _ = parse_subscribe(pkt.body, True)
            self.send(index, packet(0xB0, u16(mid) + varint(0) + b"\x00" * len(entries)))
            return True
        if pkt.kind == PINGREQ:
            n = self._pinged[index] = self._pinged.get(index, 0) + 1
            if self.pings is None or n <= self.pings:
                self.send(index, b"\xd0\x00")
            return True
        if pkt.kind == PUBACK:
            if self.puback_hook:
                self.puback_hook(index, int.from_bytes(pkt.body[0:2], "big"), pkt.at)
            return True
        return False

    def subscriptions(self, index):
        """[(kind, packet id, filter, options)] of the SUBSCRIBEs and
        UNSUBSCRIBEs received on connection `index`, one per filter, in order."""
        out = []
        with self.lock:
            pkts = [p for p in self.packets if p.index == index and p.kind in (SUBSCRIBE, UNSUBSCRIBE)]
        for p in pkts:
            mid, entries, _ = parse_subscribe(p.body, p.kind == UNSUBSCRIBE)
            out += [(p.kind, mid, f, o) for f, o in entries]
        return out

    def acked(self, index=None):
        """Packet ids of the PUBACKs received (on one connection), in order."""
        return [int.from_bytes(p.body[0:2], "big") for p in self.of_kind(PUBACK, index)]


class PlantWireWorld(BridgeWorld):
    """BridgeWorld with FakePlant in place of the plant mosquitto: the same
    PKIs, bridge configuration and queue file.  cloud=False leaves the cloud
    unreachable (a port nobody listens on), so messages stay in the queue."""

    def __init__(self, env, cloud=True, **fake_kw):
        # Not BridgeWorld.__init__: that starts a plant mosquitto.
        self.env = env
        self.plant_pki = env.pki("plant")
        self.cloud_pki = env.pki("cloudpki")
        self.plant = FakePlant(self.plant_pki, **fake_kw)
        self.cloud = env.cloud_broker(self.cloud_pki) if cloud else None
        self.queue_path = env.path("queue.db")
        self.bridge = None
        self.sub = None

    def start_bridge(self, rules, extra="", **kw):
        if self.cloud is None:
            kw.setdefault("cloud_port", h.free_port())
        return super().start_bridge(rules, extra, **kw)

    def rows(self, payload):
        """(device, local_topic) of the queued messages with this payload,
        read from the queue file opened read-only."""
        with contextlib.closing(sqlite3.connect("file:%s?mode=ro" % self.queue_path, uri=True,
                                                timeout=5)) as db:
            return db.execute("SELECT device, local_topic FROM msg WHERE payload = ? ORDER BY seq",
                              (payload,)).fetchall()


class PlantWire(unittest.TestCase):
    def start(self, env, rules=RULES, cloud=True, extra="", env_vars=None, **fake_kw):
        """FakePlant, a real cloud mosquitto (or none), the bridge connected
        to the plant and subscribed there: (world, plant, bridge)."""
        w = PlantWireWorld(env, cloud=cloud, **fake_kw)
        self.addCleanup(w.plant.close)
        b = w.start_bridge(rules, extra=extra, env_vars=env_vars)
        self.assertTrue(w.wait_plant_ready(b, 15), b.log())
        self.subscribed(w.plant, b, 0, len(rules))
        if cloud:
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
        return w, w.plant, b

    def subscribed(self, plant, b, index, n):
        """Wait until connection `index` has its n SUBSCRIBEs/UNSUBSCRIBEs."""
        self.assertTrue(h.wait_for(lambda: len(plant.subscriptions(index)) >= n, 10 * h.SLOW),
                        "connection %d: %r\n%s" % (index, plant.subscriptions(index), b.log()[-3000:]))

    def wait_acked(self, plant, b, index, mids, timeout=10):
        self.assertTrue(h.wait_for(lambda: set(mids) <= set(plant.acked(index)), timeout * h.SLOW),
                        "connection %d: PUBACKs %r, expected %r\n%s"
                        % (index, plant.acked(index), sorted(mids), b.log()[-3000:]))

    # --- 1 ------------------------------------------------------------------

    def test_subscribe_one_filter_each_covered_unsubscribed_refusal(self):
        # A covers B and C (B covers C as well); D stands alone.  The bridge
        # subscribes to A and D and unsubscribes B and C (a persistent session
        # may hold them from an earlier configuration).  The broker refuses A:
        # the bridge logs it and subscribes to B, which covers C in turn (a
        # subscription to C as well would bring each message on C twice, and
        # it would be queued twice: plant.c subscribe_all).  The more specific
        # rules come first, as the configuration requires.
        a, b_, c, d = ("plant/+/telemetry/#", "plant/l1/telemetry/#", "plant/l1/telemetry/t",
                       "site/energy")
        rules = [c + " qos=1", b_ + " qos=1", a + " qos=1", d + " qos=1"]
        with h.Env("br-pwire-sub") as env:
            w, plant, b = self.start(env, rules=rules, refuse={a})
            sub = w.cloud_subscriber("#")
            self.subscribed(plant, b, 0, 5)
            self.assertTrue(b.wait_log(r"event=plant\.subscribe_refused filter=plant/\+/telemetry/# ",
                                       5), b.log()[-3000:])
            time.sleep(0.5)  # anything else the bridge would send has come by now
            got = plant.subscriptions(0)
            with plant.lock:
                raw = [p for p in plant.packets if p.kind in (SUBSCRIBE, UNSUBSCRIBE)]
            # One filter per packet, the fixed header flags 0010, no properties.
            self.assertEqual(len(raw), len(got), got)
            self.assertEqual([p.first for p in raw],
                             [0x82 if p.kind == SUBSCRIBE else 0xA2 for p in raw])
            for p in raw:
                self.assertEqual(parse_subscribe(p.body, p.kind == UNSUBSCRIBE)[2], [])
            self.assertEqual(sorted((k, f, o) for k, _, f, o in got[:4]),
                             sorted([(SUBSCRIBE, a, SUB_OPTIONS), (UNSUBSCRIBE, b_, None),
                                     (UNSUBSCRIBE, c, None), (SUBSCRIBE, d, SUB_OPTIONS)]), got)
            self.assertEqual([(k, f, o) for k, _, f, o in got[4:]], [(SUBSCRIBE, b_, SUB_OPTIONS)],
                             "after the refusal of %s: %r" % (a, got))
            mids = [m for _, m, _, _ in got]
            self.assertNotIn(0, mids)
            self.assertEqual(len(set(mids)), len(mids), "packet ids reused: %r" % got)
            # The refused filter's rule line and the hint are in the line.
            line = [l for l in b.log().splitlines() if "event=plant.subscribe_refused" in l]
            self.assertEqual(len(line), 1, line)
            self.assertIn("rule_line=", line[0])
            # Ready once, when the last SUBACK (the one for B) came back.
            done = [l for l in b.log().splitlines() if "event=plant.subscribed " in l]
            self.assertEqual(len(done), 1, done)
            self.assertIn("rules=4 refused=1", done[0])
            self.assertLess(b.log().index("event=plant.subscribe_refused"),
                            b.log().index("event=plant.subscribed "))
            # The link works on: what B and D cover reaches the real cloud.
            plant.send(0, publish(c, 1, b"via-b") + publish(d, 2, b"via-d"))
            self.wait_acked(plant, b, 0, {1, 2})
            msgs = sub.wait_messages(2, 10)
            self.assertEqual(sorted((m["topic"], m["payload"]) for m in msgs),
                             [(c, b"via-b"), (d, b"via-d")])
            self.assertEqual(plant.n_connections, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 2 ------------------------------------------------------------------

    def test_puback_only_after_the_message_is_in_the_queue(self):
        # Each commit takes 250 ms longer (PLANTGATE_TEST_COMMIT_DELAY_MS), a
        # commit starts at most every 400 ms (queue_commit_interval), and
        # three bursts of 10 arrive 100 ms apart: the first burst's PUBACKs
        # wait in the gate while it is committed (link_hold), the later
        # bursts are read meanwhile and their PUBACKs wait in the send buffer
        # (link_t.defer) until their own commit, which starts only 150 ms
        # after the first one ended.  Checked in the fake as each PUBACK
        # arrives.
        delay_ms, bursts, per = 250, 3, 10
        seen, lock = [], threading.Lock()

        def payload(mid):
            return b"pba-%03d" % mid

        def on_puback(index, mid, at):
            try:
                copies = len(w.rows(payload(mid)))
            except sqlite3.Error as e:
                copies = repr(e)
            with lock:
                seen.append((mid, copies, at))

        with h.Env("br-pwire-persist") as env:
            w, plant, b = self.start(env, cloud=False, on_puback=on_puback,
                                     extra="queue_commit_interval 400ms\n",
                                     env_vars={"PLANTGATE_TEST_COMMIT_DELAY_MS": str(delay_ms)})
            mid = 0
            sent_at = time.monotonic()
            for _ in range(bursts):
                data = b""
                for _ in range(per):
                    mid += 1
                    data += publish(TOPIC, mid, payload(mid))
                plant.send(0, data)
                time.sleep(0.1)
            n = bursts * per
            self.wait_acked(plant, b, 0, set(range(1, n + 1)), 20)
            with lock:
                checked = list(seen)
            self.assertEqual(sorted(m for m, _, _ in checked), list(range(1, n + 1)),
                             "each message acknowledged once")
            early = [(m, c) for m, c, _ in checked if c != 1]
            self.assertEqual(early, [], "(packet id, copies in the queue) when its PUBACK arrived")
            first = min(at for _, _, at in checked)
            self.assertGreaterEqual(first - sent_at, delay_ms / 1000 - 0.05,
                                    "the first PUBACK came before a commit could have ended")
            self.assertEqual(w.queue_count(), n)
            self.assertEqual(plant.n_connections, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 3 ------------------------------------------------------------------

    def assert_one_record_per_recv(self, w):
        """What the read counts rest on: an SSLSocket.recv returns at most
        one TLS record, however many have arrived."""
        cert, key = w.plant_pki.bridge_cert(BRIDGE_ID)
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.load_verify_locations(w.plant_pki.ca)
        cctx.load_cert_chain(cert, key)
        a, s = socket.socketpair()
        got = []

        def server():
            with w.plant.ctx.wrap_socket(s, server_side=True) as t:
                t.settimeout(5)
                time.sleep(0.3)  # both records are in the socket by now
                got.append(t.recv(65536))
                got.append(t.recv(65536))

        th = threading.Thread(target=server, daemon=True)
        th.start()
        with cctx.wrap_socket(a, server_hostname="localhost") as c:
            c.sendall(b"x" * 100)
            c.sendall(b"y" * 200)
            th.join(10)
        self.assertEqual(got, [b"x" * 100, b"y" * 200])

    def test_pubacks_of_a_burst_leave_in_few_tls_records(self):
        n = 100
        with h.Env("br-pwire-coalesce") as env:
            w, plant, b = self.start(env, cloud=False)
            self.assert_one_record_per_recv(w)
            plant.send(0, b"".join(publish(TOPIC, m, b"c%d" % m) for m in range(1, n + 1)))
            self.wait_acked(plant, b, 0, set(range(1, n + 1)), 20)
            acks = plant.of_kind(PUBACK, 0)
            self.assertEqual(sorted(int.from_bytes(p.body[0:2], "big") for p in acks),
                             list(range(1, n + 1)))
            self.assertTrue(all(p.first == 0x40 and p.body[2:] in (b"", b"\x00") for p in acks))
            records = sorted({p.read for p in acks})
            self.assertLessEqual(len(records), 10, "%d PUBACKs came in %d TLS records"
                                 % (n, len(records)))
            h.log("%d PUBACKs in %d TLS record(s)" % (n, len(records)))
            self.assertEqual(w.queue_count(), n)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 4 ------------------------------------------------------------------

    def test_redelivery_acknowledged_not_stored_twice(self):
        port = h.free_port()
        url = "http://127.0.0.1:%d/metrics" % port

        def redelivered():
            return int(REDELIVERED.search(urllib.request.urlopen(url, timeout=5).read()).group(1))

        with h.Env("br-pwire-redeliver") as env:
            w, plant, b = self.start(env, cloud=False, session_present={1},
                                     extra="http_listen 127.0.0.1:%d\n" % port)
            plant.send(0, publish(TOPIC, 7, b"r7"))
            self.wait_acked(plant, b, 0, {7})
            self.assertEqual(len(w.rows(b"r7")), 1)
            self.assertEqual(redelivered(), 0)
            # The broker goes away before it has read... as far as the bridge
            # knows; it comes back with the session and sends mid 7 again.
            plant.close_connection(0)
            self.assertTrue(b.wait_log(r"event=plant\.disconnected ", 5), b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: plant.n_connections >= 2, 10 * h.SLOW),
                            b.log()[-3000:])
            self.subscribed(plant, b, 1, 1)
            self.assertTrue(b.wait_log(r"event=plant\.connected .*session_present=1", 5),
                            b.log()[-3000:])
            plant.send(1, publish(TOPIC, 7, b"r7", dup=True))
            self.wait_acked(plant, b, 1, {7})
            self.assertEqual(len(w.rows(b"r7")), 1, "a redelivery was stored twice")
            self.assertTrue(h.wait_for(lambda: redelivered() == 1, 5),
                            "plant_redelivered_total %d" % redelivered())
            self.assertTrue(b.wait_log(r"event=plant\.redelivered count=1 ", 5), b.log()[-3000:])
            # The same content as a first delivery (DUP=0, a new packet id):
            # a device sent the same value again, and it is stored.
            plant.send(1, publish(TOPIC, 8, b"r7"))
            self.wait_acked(plant, b, 1, {8})
            self.assertEqual(len(w.rows(b"r7")), 2)
            # DUP=1 alone is no proof: content never stored is stored.
            plant.send(1, publish(TOPIC, 9, b"r9", dup=True))
            self.wait_acked(plant, b, 1, {9})
            self.assertEqual(len(w.rows(b"r9")), 1)
            self.assertEqual(redelivered(), 1)
            self.assertEqual(w.queue_count(), 3)
            self.assertEqual(plant.n_connections, 2)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 5 ------------------------------------------------------------------

    def test_plantgate_device_trusted_only_when_single(self):
        dev = "plantgate-device"
        cases = [  # (packet id, payload, properties, device queued)
            (1, b"one", user_prop(dev, "press-07"), "press-07"),
            (2, b"two-differ", user_prop(dev, "press-07") + user_prop(dev, "press-08"), ""),
            (3, b"two-same", user_prop(dev, "press-07") + user_prop(dev, "press-07"), ""),
            (4, b"none", b"", ""),
            (5, b"among-others", user_prop("unit", "C") + user_prop(dev, "press-07") +
             user_prop("line", "l1"), "press-07"),
        ]
        with h.Env("br-pwire-device") as env:
            w, plant, b = self.start(env, cloud=False)
            plant.send(0, b"".join(publish(TOPIC, m, p, props=pr) for m, p, pr, _ in cases))
            self.wait_acked(plant, b, 0, {m for m, _, _, _ in cases})
            for m, p, _, device in cases:
                self.assertEqual(w.rows(p), [(device, TOPIC)], "packet id %d" % m)
            self.assertEqual(plant.n_connections, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 6 ------------------------------------------------------------------

    def test_large_message_taken_and_no_maximum_packet_size(self):
        big = os.urandom(300 * 1024)
        with h.Env("br-pwire-large") as env:
            w, plant, b = self.start(env)
            sub = w.cloud_subscriber("#")
            props = connect_props(plant.connects[0])
            ids = [k for k, _ in props]
            self.assertNotIn(0x27, ids, "the CONNECT announces a Maximum Packet Size: %r" % props)
            self.assertIn((0x11, 0xFFFFFFFF), props, "session expiry: the properties were parsed")
            plant.send(0, publish(TOPIC, 1, big) + publish(TOPIC, 2, b"after"))
            self.wait_acked(plant, b, 0, {1, 2}, 20)
            msgs = sub.wait_messages(2, 20)
            self.assertEqual([(m["topic"], len(m["payload"])) for m in msgs],
                             [(TOPIC, len(big)), (TOPIC, 5)])
            self.assertTrue(msgs[0]["payload"] == big, "the payload arrived changed")
            self.assertNotIn("plant.rejected", b.log())
            self.assertEqual(plant.n_connections, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 7 ------------------------------------------------------------------

    def test_protocol_errors_drop_the_connection_without_puback(self):
        # One broken packet per connection, sent once it has subscribed; each
        # must end that connection with a protocol error, unacknowledged and
        # unstored, and the bridge must connect again.
        bad = [  # (what, bytes, packet id of a QoS 1 PUBLISH or None, reason pattern)
            ("QoS 2 PUBLISH", publish(TOPIC, 21, b"bad-qos2", qos=2), 21, r"QoS 2"),
            ("Topic Alias", publish(TOPIC, 22, b"bad-alias", props=b"\x23" + u16(1)), 22,
             r"topic alias"),
            ("wildcard topic", publish("plant/+/telemetry/t", 23, b"bad-plus"), 23, r"topic"),
            ("invalid UTF-8 topic", publish(b"plant/l1/telemetry/\xff\xfe", 24, b"bad-utf8"), 24,
             r"UTF-8"),
            ("5 continuation bytes", b"\x30\xff\xff\xff\xff\xff\x01", None, r"length"),
            ("CONNACK after connect", packet(0x20, b"\x00\x00\x00"), None, r"CONNACK"),
        ]
        with h.Env("br-pwire-proto") as env:
            w, plant, b = self.start(env, cloud=False)
            for i, (what, data, mid, why) in enumerate(bad):
                if i:
                    self.assertTrue(h.wait_for(lambda: plant.n_connections > i, 10 * h.SLOW),
                                    "no reconnect after the %s\n%s" % (bad[i - 1][0], b.log()[-3000:]))
                    self.subscribed(plant, b, i, 1)
                plant.send(i, data)
                self.assertTrue(h.wait_for(lambda: i in plant.closed_at, 5 * h.SLOW),
                                "%s: connection not dropped\n%s" % (what, b.log()[-3000:]))
                # The bridge closes the socket, then logs why: wait for the line.
                pat = r"event=plant\.disconnected reason=\"([^\"]*)\""
                h.wait_for(lambda: len(re.findall(pat, b.log())) > i, 5 * h.SLOW)
                lines = re.findall(pat, b.log())
                self.assertEqual(len(lines), i + 1, "%s: %r" % (what, lines))
                self.assertIn("protocol error", lines[i], what)
                self.assertRegex(lines[i], why, what)
                self.assertEqual(plant.acked(i), [], "%s: acknowledged" % what)
                self.assertEqual(plant.of_kind(PUBREC, i), [], what)
            # Connected again, and working: nothing bad was stored.
            n = len(bad)
            self.assertTrue(h.wait_for(lambda: plant.n_connections > n, 10 * h.SLOW), b.log()[-3000:])
            self.subscribed(plant, b, n, 1)
            plant.send(n, publish(TOPIC, 30, b"good"))
            self.wait_acked(plant, b, n, {30})
            self.assertEqual(w.rows(b"good"), [("", TOPIC)])
            self.assertEqual(w.queue_count(), 1)
            for i in range(n + 1):
                self.assertEqual(len(plant.of_kind(CONNECT, i)), 1)
                self.assertNotIn(0x27, [k for k, _ in connect_props(plant.connects[i])])
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 8 ------------------------------------------------------------------

    def test_keepalive_pingreq_and_timeout(self):
        # plant_keepalive 5s (its minimum; BridgeWorld's configuration).  The
        # fake answers the first PINGREQ of a connection only: the link stays
        # up through it, and is dropped a keepalive after the second.
        with h.Env("br-pwire-keepalive") as env:
            w, plant, b = self.start(env, cloud=False, pings=1)
            body = plant.connects[0]
            self.assertEqual(int.from_bytes(body[8:10], "big"), 5, "keepalive in the CONNECT")
            with plant.lock:
                last_out = max(p.at for p in plant.packets if p.index == 0)
            self.assertTrue(h.wait_for(lambda: len(plant.of_kind(PINGREQ, 0)) >= 2, 15),
                            b.log()[-3000:])
            pings = plant.of_kind(PINGREQ, 0)
            self.assertEqual([(p.first, p.body) for p in pings], [(0xC0, b"")] * len(pings))
            gaps = [pings[0].at - last_out, pings[1].at - pings[0].at]
            self.assertTrue(all(4.0 <= g <= 7.0 for g in gaps), gaps)
            self.assertNotIn("event=plant.disconnected", b.log(), "dropped with PINGRESP answered")
            self.assertNotIn(0, plant.closed_at)
            self.assertTrue(b.wait_log(r"event=plant\.disconnected reason=\"keepalive timeout", 9),
                            b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: 0 in plant.closed_at, 5))
            waited = plant.closed_at[0] - pings[1].at
            self.assertTrue(4.0 <= waited <= 7.0, "dropped %.1f s after the PINGREQ" % waited)
            self.assertEqual(len(plant.of_kind(PINGREQ, 0)), 2)
            self.assertTrue(h.wait_for(lambda: plant.of_kind(CONNECT, 1), 10), b.log()[-3000:])
            self.subscribed(plant, b, 1, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])

    # --- 9 ------------------------------------------------------------------

    def test_reload_unsubscribes_a_removed_filter(self):
        # SIGHUP with one rule fewer (plant.c plant_take_whitelist): the
        # bridge unsubscribes the removed filter on the live connection, in
        # the same raw encoding as its other UNSUBSCRIBEs, and goes on idling
        # (a packet queued in libmosquitto, which raw mode never writes, would
        # keep the link's poll() asking for POLLOUT: a busy loop).
        a, d = "plant/+/telemetry/#", "site/energy"
        with h.Env("br-pwire-reload") as env:
            w, plant, b = self.start(env, rules=[a + " qos=1", d + " qos=1"], cloud=False)
            before = plant.subscriptions(0)
            idle = cpu_seconds(b.pid, 1.5)
            conf = env.path("bridge.conf")
            with open(conf) as f:
                text = f.read()
            self.assertIn("forward %s qos=1\n" % d, text)
            env.write("bridge.conf", text.replace("forward %s qos=1\n" % d, ""))
            b.signal(signal.SIGHUP)
            self.assertTrue(b.wait_log(r"event=plant\.whitelist_applied rules=1", 10), b.log()[-3000:])
            busy = cpu_seconds(b.pid, 1.5)
            h.log("CPU of the bridge in 1.5 s: %.2f s before the reload, %.2f s after" % (idle, busy))
            got = plant.subscriptions(0)
            after = got[len(before):]
            self.assertIn((UNSUBSCRIBE, d), [(k, f) for k, _, f, _ in after],
                          "no UNSUBSCRIBE for the removed filter: %r (CPU in 1.5 s: %.2f s before "
                          "the reload, %.2f s after)\n%s" % (after, idle, busy, b.log()[-3000:]))
            self.assertNotIn((SUBSCRIBE, d), [(k, f) for k, _, f, _ in after])
            with plant.lock:
                raw = [p for p in plant.packets if p.kind in (SUBSCRIBE, UNSUBSCRIBE)]
            self.assertEqual(len(raw), len(got), "one filter per packet: %r" % got)
            mids = [m for _, m, _, _ in got]
            self.assertNotIn(0, mids)
            self.assertEqual(len(set(mids)), len(mids), "packet ids reused: %r" % got)
            self.assertLess(busy, max(0.5, 3 * idle),
                            "the bridge used %.2f s of CPU in 1.5 s after the reload (%.2f s before)"
                            % (busy, idle))
            self.assertEqual(plant.n_connections, 1)
            self.assertEqual(b.stop(), 0, b.log()[-3000:])


def cpu_seconds(pid, span):
    """CPU time (user + system, all threads) process pid uses in the next
    `span` seconds."""
    def total():
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    t0 = total()
    time.sleep(span)
    return total() - t0


if __name__ == "__main__":
    unittest.main(verbosity=2)
