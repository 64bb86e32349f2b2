"""The cloud link from a plant that lets only HTTPS out: MQTT over WebSockets
(cloud_transport wss) and through an HTTP CONNECT proxy (cloud_proxy), with
real parts on loopback — mosquitto's own WebSocket listener with mutual TLS
as the cloud, tinyproxy from Debian as the plant's forward proxy.

  - relay over wss; over tls through the proxy; over wss through the proxy
    with Basic credentials from a 0600 file
  - an outage of the cloud and a kill -9 loop of the bridge, over wss through
    the proxy: 0 messages missing
  - a proxy that refuses (403), asks for credentials (407: none, wrong),
    or is killed mid-stream: its own log line, the metric, the messages
    kept, delivery once it is fixed or back
  - an https:// proxy (socat terminating TLS in front of tinyproxy): wss
    through it (TLS inside TLS) and tls through it; a proxy certificate from
    another CA refused
  - over wss, a cloud certificate for another name or from another CA is
    refused exactly as over tls
"""
import json
import os
import re
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_crash import Publisher, sigkill_loop  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
KILLS = int(os.environ.get("PG_BRIDGE_WSS_KILLS", "5"))


def ws_listener(port, ca, cert, key):
    """A mosquitto WebSocket listener with mutual TLS (config lines)."""
    return "\n".join([
        "listener %d 127.0.0.1" % port, "protocol websockets", "cafile %s" % ca,
        "certfile %s" % cert, "keyfile %s" % key, "require_certificate true",
        "use_identity_as_username true", "tls_version tlsv1.2", ""])


class Proxy(h.Proc):
    """tinyproxy on 127.0.0.1, in the foreground, with its own config file."""

    def __init__(self, env, name, connect_ports, auth=None, port=None):
        self.port = port or h.free_port()
        lines = ["Port %d" % self.port, "Listen 127.0.0.1", "Timeout 30", "MaxClients 20",
                 "LogLevel Info", "Allow 127.0.0.1"]
        lines += ["ConnectPort %d" % p for p in connect_ports]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        self.conf = env.write(name + ".conf", "\n".join(lines) + "\n")
        super().__init__(env, name, ["tinyproxy", "-d", "-c", self.conf])
        self._ready()

    def _ready(self):
        ok = h.wait_for(lambda: not self.alive() or h.pid_listens(self.pid, self.port), 15)
        if not ok or not self.alive():
            raise RuntimeError("tinyproxy did not start:\n" + self.log())

    def start(self):
        super().start()
        if hasattr(self, "port"):
            self._ready()


class TlsFront(h.Proc):
    """socat terminating TLS (cert, key) on 127.0.0.1 in front of `backend`
    (a Proxy): the plant's https:// proxy."""

    def __init__(self, env, name, backend, cert, key):
        self.port = h.free_port()
        super().__init__(env, name, [
            "socat", "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,verify=0,cert=%s,key=%s"
            % (self.port, cert, key), "TCP:127.0.0.1:%d" % backend.port])
        if not h.wait_for(lambda: not self.alive() or h.pid_listens(self.pid, self.port), 15) \
                or not self.alive():
            raise RuntimeError("socat did not start:\n" + self.log())


class WssWorld(BridgeWorld):
    """BridgeWorld whose cloud also has a WebSocket listener (wss_port)."""

    def __init__(self, env, **kw):
        self.wss_port = h.free_port()

        def extra(pki):
            crt, key = pki.server("localhost")
            return ws_listener(self.wss_port, pki.ca, crt, key)
        super().__init__(env, cloud_extra=extra, **kw)

    def wss_conf(self, proxy=None, extra="", auth_file=None, port=None):
        lines = ["cloud_transport wss", "cloud_ws_path /mqtt"]
        if proxy:
            lines.append("cloud_proxy http://127.0.0.1:%d" % proxy.port)
        if auth_file:
            lines.append("cloud_proxy_auth_file %s" % auth_file)
        return "\n".join(lines) + "\n" + extra, port or self.wss_port

    def start_wss(self, proxy=None, extra="", auth_file=None, name="bridge", port=None):
        text, p = self.wss_conf(proxy, extra, auth_file, port)
        return self.start_bridge(RULES, extra=text, name=name, cloud_port=p)


def auth_file(env, text, mode=0o600):
    p = env.write("proxy-auth", text)
    os.chmod(p, mode)
    return p


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def nums(msgs):
    return [json.loads(m["payload"])["n"] for m in msgs]


class Wss(unittest.TestCase):
    def publish(self, w, n, start=0):
        pub = w.publisher()
        for i in range(start, start + n):
            self.assertTrue(pub.publish("plant/l1/telemetry/t", json.dumps({"n": i}), qos=1))
        return pub

    def test_relay_over_wss_and_through_proxy(self):
        with h.Env("br-wss") as env:
            w = WssWorld(env)
            sub = w.cloud_subscriber("#")
            # 1. wss, direct.
            b = w.start_wss()
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            self.assertRegex(b.log(), r"event=cloud\.transport transport=wss path=/mqtt proxy=none")
            self.publish(w, 20)
            self.assertEqual(sorted(nums(sub.wait_messages(20, 20))), list(range(20)), b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10))
            self.assertEqual(b.stop(), 0, b.log())
            # The cloud saw a WebSocket client, and the bridge's graceful stop
            # reached it through the relay (MQTT DISCONNECT, not a lost socket).
            self.assertTrue(w.cloud.wait_log(r"Received DISCONNECT from plant-hq-bridge", 10),
                            w.cloud.log()[-2000:])
            # 2. tls through the proxy: libmosquitto's own TLS inside CONNECT.
            proxy = Proxy(env, "proxy", [w.cloud.port, w.wss_port])
            sub.take()
            b = w.start_bridge(RULES, name="bridge-tls-proxy",
                               extra="cloud_proxy http://127.0.0.1:%d\n" % proxy.port)
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            self.publish(w, 20, 100)
            self.assertEqual(sorted(nums(sub.wait_messages(20, 20))), list(range(100, 120)),
                             b.log())
            self.assertRegex(proxy.log(), r"CONNECT.*127\.0\.0\.1:%d" % w.cloud.port)
            self.assertEqual(b.stop(), 0, b.log())
            # 3. wss through the proxy.
            sub.take()
            b = w.start_wss(proxy, name="bridge-wss-proxy")
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            self.publish(w, 20, 200)
            self.assertEqual(sorted(nums(sub.wait_messages(20, 20))), list(range(200, 220)),
                             b.log())
            self.assertRegex(proxy.log(), r"CONNECT.*127\.0\.0\.1:%d" % w.wss_port)
            self.assertEqual(b.stop(), 0, b.log())
            # 4. no_proxy names the cloud: direct, although the proxy is down.
            proxy.stop()
            sub.take()
            b = w.start_wss(proxy, name="bridge-no-proxy", extra="cloud_no_proxy \"localhost, 127.0.0.0/8\"\n")
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            self.assertRegex(b.log(), r"event=cloud\.proxy_bypassed")
            self.publish(w, 5, 300)
            self.assertEqual(sorted(nums(sub.wait_messages(5, 20))), list(range(300, 305)))
            self.assertEqual(b.stop(), 0, b.log())

    def test_outage_and_kill_loop_over_wss_through_proxy_lose_nothing(self):
        t0 = time.monotonic()
        with h.Env("br-wss-crash") as env:
            w = WssWorld(env, cloud_persistence=True)
            sub = w.cloud_subscriber("#", clean=False)
            proxy = Proxy(env, "proxy", [w.wss_port], auth=("plant", "s3cret"))
            creds = auth_file(env, "plant:s3cret\n")
            b = w.start_wss(proxy, auth_file=creds)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            pub = Publisher(w.publisher(), ["plant/l1/telemetry/t"])
            pub.start()
            # Outage: the cloud goes away for 3 s and comes back.
            time.sleep(1.0)
            w.cloud.stop()
            time.sleep(3.0)
            w.cloud.start()
            self.assertTrue(b.wait_log(r"(?s)event=cloud\.disconnected.*event=cloud\.connected", 20),
                            b.log())
            sub.connect()
            # kill -9 loop of the bridge.
            b = sigkill_loop(b, lambda: w.start_wss(proxy, auth_file=creds), KILLS, 16, (0.5, 1.2))
            time.sleep(1.0)
            pub.stop_ev.set()
            pub.join(10)
            sent = pub.sent
            got = sub.wait_unique(lambda m: json.loads(m["payload"])["n"], sent, stall=20)
            seen = nums(got)
            missing = sorted(set(range(sent)) - set(seen))
            h.log("wss+proxy outage + kill -9 x%d: sent=%d received=%d unique=%d missing=%d "
                  "duplicates=%d elapsed=%.1fs" % (KILLS, sent, len(seen), len(set(seen)),
                                                   len(missing), len(seen) - len(set(seen)),
                                                   time.monotonic() - t0))
            self.assertGreater(sent, 200)
            self.assertEqual(missing, [], "lost: %s" % missing[:50])
            first, dedup = [], set()
            for x in seen:
                if x not in dedup:
                    dedup.add(x)
                    first.append(x)
            self.assertEqual(first, sorted(first), "order")
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 5))

    def test_proxy_refuses_asks_for_auth_and_is_cut(self):
        with h.Env("br-wss-proxyfail") as env:
            w = WssWorld(env)
            sub = w.cloud_subscriber("#")
            hport = h.free_port()
            http = "http_listen 127.0.0.1:%d\n" % hport
            # 403: the proxy allows CONNECT only to another port.
            proxy = Proxy(env, "proxy403", [1])
            b = w.start_wss(proxy, extra=http, name="b403")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.publish(w, 3)
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_refused .*reason=\"CONNECT 127\.0\.0\.1:%d "
                                       r"refused: 403" % w.wss_port, 10), b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 3, 10))
            self.assertGreaterEqual(metrics(hport)['plantgate_bridge_cloud_proxy_failures_total{reason="refused"}'], 1)
            time.sleep(1.0)  # retries: still one line
            self.assertEqual(b.log().count("event=cloud.proxy_refused"), 1, b.log())
            self.assertEqual(b.stop(), 0)
            proxy.stop()
            # 407: credentials wanted, none given; then wrong ones.
            proxy = Proxy(env, "proxy407", [w.wss_port], auth=("plant", "s3cret"))
            b = w.start_wss(proxy, extra=http, name="b407")
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_auth_failed .*407.*no credentials sent"
                                       r".*hint=\"the proxy wants credentials", 10), b.log())
            self.assertGreaterEqual(metrics(hport)['plantgate_bridge_cloud_proxy_failures_total{reason="auth"}'], 1)
            self.assertEqual(b.stop(), 0)
            # A credentials file others may read is refused at start.
            loose = auth_file(env, "plant:s3cret\n", 0o644)
            b = w.start_wss(proxy, extra=http, name="bloose", auth_file=loose)
            self.assertEqual(b.wait(10), 1, b.log())
            self.assertRegex(b.log(), r"cloud_proxy_auth_file .*readable by every user.*chmod 600")
            wrong = auth_file(env, "plant:wrong\n")
            b = w.start_wss(proxy, extra=http, name="bwrong", auth_file=wrong)
            # (tinyproxy answers wrong credentials with 401, missing ones with 407)
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_auth_failed .*40[17] .*Basic credentials sent"
                                       r".*refused by the proxy", 10), b.log())
            self.assertEqual(b.stop(), 0)
            self.assertEqual(sub.take(), [])
            self.assertEqual(w.queue_count(), 3)
            # Right credentials: the kept messages arrive.
            good = auth_file(env, "plant:s3cret\n")
            b = w.start_wss(proxy, extra=http, name="bgood", auth_file=good)
            self.assertEqual(sorted(nums(sub.wait_messages(3, 20))), [0, 1, 2], b.log())
            # The proxy dies mid-stream: its own line, the metric, messages
            # kept while it is away, delivered once it is back.
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 10))
            proxy.kill()
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_closed ", 10), b.log())
            self.publish(w, 5, 10)
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_unreachable .*Connection refused", 10),
                            b.log())
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 5, 10))
            m = metrics(hport)
            self.assertGreaterEqual(m['plantgate_bridge_cloud_proxy_failures_total{reason="closed"}'], 1)
            self.assertGreaterEqual(m['plantgate_bridge_cloud_proxy_failures_total{reason="unreachable"}'], 1)
            proxy.start()
            self.assertEqual(sorted(nums(sub.wait_messages(8, 20)))[3:], list(range(10, 15)), b.log())
            self.assertEqual(b.stop(), 0, b.log())

    def test_https_proxy(self):
        """TLS to the proxy itself: wss through it is TLS inside TLS; tls through
        it too.  A proxy certificate from another CA is refused."""
        with h.Env("br-wss-https") as env:
            w = WssWorld(env)
            sub = w.cloud_subscriber("#")
            proxy = Proxy(env, "proxy", [w.cloud.port, w.wss_port])
            pki = env.pki("proxypki")
            front = TlsFront(env, "front", proxy, *pki.server("localhost"))
            https = "cloud_proxy https://localhost:%d\ncloud_proxy_cafile %s\n" % (front.port, pki.ca)
            b = w.start_wss(extra=https, name="b-wss")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            self.assertRegex(b.log(), r"event=cloud\.transport transport=wss path=/mqtt "
                                      r"proxy=https://localhost:%d" % front.port)
            self.publish(w, 10)
            self.assertEqual(sorted(nums(sub.wait_messages(10, 20))), list(range(10)), b.log())
            self.assertEqual(b.stop(), 0, b.log())
            sub.take()
            b = w.start_bridge(RULES, name="b-tls", extra=https)
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            self.publish(w, 10, 100)
            self.assertEqual(sorted(nums(sub.wait_messages(10, 20))), list(range(100, 110)), b.log())
            self.assertEqual(b.stop(), 0, b.log())
            self.assertEqual(len(re.findall(r"CONNECT.*127\.0\.0\.1:(?:%d|%d)" % (
                w.cloud.port, w.wss_port), proxy.log())), 2, proxy.log())
            # The proxy's certificate from a CA the bridge was not told to trust.
            sub.take()
            other = env.pki("otherpki")
            bad = TlsFront(env, "badfront", proxy, *other.server("localhost"))
            b = w.start_wss(name="b-bad", extra="cloud_proxy https://localhost:%d\n"
                            "cloud_proxy_cafile %s\n" % (bad.port, pki.ca))
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.publish(w, 1, 200)
            self.assertTrue(b.wait_log(r"event=cloud\.proxy_tls_failed .*certificate verify failed",
                                       10), b.log())
            self.assertEqual(sub.take(), [])
            self.assertEqual(b.stop(), 0, b.log())

    def test_wss_refuses_wrong_name_and_unknown_ca(self):
        with h.Env("br-wss-tls") as env:
            w = WssWorld(env)
            other = env.pki("other-ca")
            other.run("server", "impostor", "--dns", "localhost", "--ip", "127.0.0.1")
            w.cloud_pki.run("server", "elsewhere", "--dns", "elsewhere.example", "--ip", "192.0.2.10")
            # libwebsockets will not serve a certificate that its cafile does not
            # vouch for, so the impostor's cafile has both CAs (it verifies the
            # bridge's certificate with the cloud CA; the bridge pins only that).
            with open(w.cloud_pki.ca) as a, open(other.ca) as o:
                both = env.write("both-ca.crt", a.read() + o.read())
            for label, pki, name in (("ca", other, "impostor"), ("name", w.cloud_pki, "elsewhere")):
                crt, key = pki.paths(name)
                port = h.free_port()
                bad = h.Broker(env, "bad-" + label, "\n".join([
                    "per_listener_settings false", "allow_anonymous true", "persistence false",
                    "log_dest stderr", "log_type all",
                    # mosquitto 2.0.11 refuses to start with WebSocket listeners only
                    # ("Unable to start any listening sockets"): an idle second one.
                    "listener %d 127.0.0.1" % h.free_port()]) + "\n" + ws_listener(port, both, crt, key),
                    port)
                b = w.start_wss(name="b-" + label, port=port)
                self.assertTrue(w.wait_plant_ready(b), b.log())
                self.publish(w, 1, 0)
                self.assertTrue(b.wait_log(r"event=cloud\.connect_failed .*reason=\"TLS with the "
                                           r"cloud: .*certificate verify failed", 10), b.log())
                self.assertNotIn("event=cloud.connected", b.log())
                self.assertNotRegex(bad.log(), r"New client connected")
                self.assertEqual(b.stop(), 0)
                bad.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
