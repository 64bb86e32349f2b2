"""plantgate-doctor on real deployments: a good one built from the shipped
examples (config/mosquitto.conf, config/policy.example, config/bridge.example)
with a PKI made by scripts/pki, a running plant broker with the plugin and a
bridge status endpoint, which must give "0 critical"; and a deliberately weak
one in which every check the doctor has (but BR-CLOUD-TLS, which the bridge
cannot be configured to fail) must show up as a finding."""
import datetime
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CONFIG = os.path.join(h.ROOT, "config")
FIXTURES = os.path.join(h.ROOT, "tests", "fixtures", "doctor")


def doctor_path():
    plain = os.path.join(h.BUILD, "doctor", "plantgate-doctor")
    asan = plain + "-asan"
    if os.environ.get("PG_SANITIZE") == "1" and os.path.exists(asan):
        return asan
    return plain


def run_doctor(*args):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    p = subprocess.run([doctor_path()] + list(args), capture_output=True, text=True, timeout=120, env=env)
    return p


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        body = b'{"status":"ok"}' if self.status == 200 else b'{"status":"cloud unreachable"}'
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def health_server(status):
    handler = type("H%d" % status, (Health,), {"status": status})
    srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Doctor(unittest.TestCase):
    def test_good_deployment_from_shipped_examples(self):
        with h.Env("doctor-good") as env:
            pki = env.pki()
            pki.server("broker")
            pki.bridge_cert("bridge-01")
            ops = pki.device("ops-console")
            cloud = env.pki("cloud")
            ccrt, ckey = cloud.bridge_cert("bridge-01")
            port = h.free_port()
            conf = h.shipped_plant_conf(env, pki, port, [
                ("plugin_opt_sys_interval 10s", "plugin_opt_sys_interval 1s"),
            ])
            conf_path = env.write("mosquitto.conf", conf)
            broker = h.Broker(env, "plant", conf, port)
            self.assertTrue(broker.wait_log(r"plantgate: version .*, policy .* loaded", 5), broker.log())
            bridge = h.render(os.path.join(CONFIG, "bridge.example"), [
                ("/etc/plantgate/pki/", pki.dir + "/"),
                ("/etc/plantgate/cloud/ca.crt", cloud.ca),
                ("/etc/plantgate/cloud/bridge-01.crt", ccrt),
                ("/etc/plantgate/cloud/bridge-01.key", ckey),
                ("/var/lib/plantgate/", env.tmp + "/"),
            ])
            bridge_path = env.write("bridge.conf", bridge)
            srv = health_server(200)
            time.sleep(1.5)  # let the plugin publish its $SYS counters once
            html = env.path("report.html")
            try:
                p = run_doctor("--mosquitto-conf", conf_path, "--bridge-conf", bridge_path,
                               "--broker", "127.0.0.1:%d" % port, "--cert", ops[0], "--key", ops[1],
                               "--bridge-url", "http://127.0.0.1:%d" % srv.server_address[1],
                               "--html", html, "-v",
                               # 3 s by default; the live checks end as soon as they have
                               # their answers, so this only gives a loaded machine time.
                               "--timeout", "20000")
            finally:
                srv.shutdown()
            out = p.stdout + p.stderr
            h.log(out)
            self.assertIn(p.returncode, (0, 1), out)
            self.assertIn("Summary: 0 critical,", p.stdout)
            # It found the files from mosquitto.conf alone.
            self.assertIn("PKI directory   %s" % pki.dir, p.stdout)
            for line in ("pass     MQ-PLUGIN", "pass     POL-CROSS-DEVICE", "pass     PKI-SHARED",
                         "pass     PKI-CRL", "pass     AUDIT-CHAIN", "pass     BR-WHITELIST",
                         "pass     BR-HOSTNAME", "pass     LIVE-BROKER", "pass     LIVE-NOCERT",
                         "pass     LIVE-BRIDGE", "pass     PKI-CA-KEY"):
                self.assertIn(line, p.stdout)
            with open(html) as f:
                page = f.read()
            self.assertIn("<svg", page)
            self.assertIn("0 critical", page)
            self.assertNotIn("<script", page)

            j = run_doctor("--mosquitto-conf", conf_path, "--bridge-conf", bridge_path, "--json")
            report = json.loads(j.stdout)
            self.assertEqual(report["summary"]["critical"], 0, j.stdout)
            self.assertEqual(j.returncode, 1 if report["summary"]["warning"] else 0)
            for f in report["findings"]:
                self.assertIn(f["component"], ("device", "lan", "server", "wan", "cloud"))
                self.assertTrue(1 <= f["fr"] <= 7)

    def test_bridge_proxy_settings(self):
        """BR-PROXY: a credentials file others may read, clear-text credentials to
        an http:// proxy, a no_proxy that names the cloud; and a good setup."""
        with h.Env("doctor-proxy") as env:
            base = h.render(os.path.join(CONFIG, "bridge.example"), [
                ("/var/lib/plantgate/", env.tmp + "/")])
            creds = env.write("proxy-auth", "plant:s3cret\n")

            def findings(extra, mode=0o600):
                os.chmod(creds, mode)
                path = env.write("bridge.conf", base + extra)
                p = run_doctor("--bridge-conf", path, "--json")
                return [(f["severity"], f["title"] + " " + (f.get("evidence") or ""))
                        for f in json.loads(p.stdout)["findings"] if f["id"] == "BR-PROXY"]

            got = findings("cloud_proxy https://proxy.corp:8443\ncloud_proxy_auth_file %s\n" % creds,
                           0o644)
            self.assertTrue(any(s == "critical" and "readable by every user" in t for s, t in got), got)
            got = findings("cloud_proxy http://proxy.corp:3128\ncloud_proxy_auth_file %s\n" % creds)
            self.assertEqual([s for s, _ in got], ["warning"], got)
            self.assertIn("clear text", got[0][1])
            got = findings("cloud_proxy https://proxy.corp:8443\ncloud_no_proxy .example.net\n")
            self.assertEqual([s for s, _ in got], ["warning"], got)
            self.assertIn("never used", got[0][1])
            got = findings("cloud_proxy https://proxy.corp:8443\ncloud_proxy_auth_file %s\n"
                           "cloud_transport wss\n" % creds)
            self.assertEqual([s for s, _ in got], ["pass"], got)

    def test_weak_deployment_triggers_every_check(self):
        seen = {}
        with h.Env("doctor-weak") as env:
            pki = env.pki("weak")
            pki.server("broker")
            pki.device("dup-a")
            shutil.copy(os.path.join(pki.dir, "issued", "dup-a.crt"), os.path.join(pki.dir, "issued", "dup-b.crt"))
            pki.device("twin")
            raw, _ = pki.raw_cert("twin-raw", "twin")
            shutil.copy(raw, os.path.join(pki.dir, "issued", "twin-raw.crt"))
            soon = (datetime.datetime.utcnow() + datetime.timedelta(days=10)).strftime("%Y%m%d%H%M%SZ")
            pki.device("soon", end=soon)
            pki.run("server", "old-broker", "--days", "5")
            pki.run("crl", "--days", "1")
            os.chmod(pki.ca_key, 0o644)
            now = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()

            policy = env.path("policy.conf")
            shutil.copy(os.path.join(FIXTURES, "weak", "policy.conf"), policy)
            audit = env.write("audit.jsonl",
                              '{"ts":"2026-01-01T00:00:00.000Z","seq":1,"event":"start","prev":"%s"}\n'
                              '{"ts":"2026-01-01T00:00:01.000Z","seq":2,"event":"stop","prev":"%s"}\n'
                              % ("0" * 64, "1" * 64))
            cert, key = pki.paths("broker")
            conf = env.write("mosquitto.conf", "\n".join([
                "per_listener_settings true",
                "user root",
                "plugin %s/missing/plantgate_auth.so" % env.tmp,
                "plugin_opt_policy %s" % policy,
                "plugin_opt_audit_log %s" % audit,
                "listener 1883",
                "allow_anonymous true",
                "listener 8883 203.1.113.7",
                "cafile %s" % pki.ca, "certfile %s" % cert, "keyfile %s" % key,
                "crlfile %s" % pki.crl,
                "tls_version tlsv1.1",
                "require_certificate false",
                "use_identity_as_username true",
                "disable_client_cert_date_checks true",
            ]) + "\n")
            bridge = env.write("bridge.conf", h.render(os.path.join(FIXTURES, "weak", "bridge.conf"), [
                ("/tmp/plantgate-doctor-fixture-queue.db", env.path("queue.db"))]))

            # A broker that lets in a client without a certificate (no plugin).
            port = h.free_port()
            bcert, bkey = pki.server("localhost")
            h.Broker(env, "open", "\n".join([
                "allow_anonymous true", "log_dest stderr",
                "listener %d 127.0.0.1" % port, "cafile %s" % pki.ca, "certfile %s" % bcert,
                "keyfile %s" % bkey, "require_certificate false"]) + "\n", port)
            dev = pki.device("sensor-1")
            srv = health_server(503)
            try:
                p = run_doctor("--mosquitto-conf", conf, "--pki", pki.dir, "--bridge-conf", bridge,
                               "--bridge-unit", os.path.join(FIXTURES, "weak", "plantgate-bridge.service"),
                               "--broker", "127.0.0.1:%d" % port, "--cert", dev[0], "--key", dev[1],
                               "--cafile", pki.ca, "--bridge-url", "http://127.0.0.1:%d" % srv.server_address[1],
                               "--now", now, "--json")
            finally:
                srv.shutdown()
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            for f in json.loads(p.stdout)["findings"]:
                if f["severity"] != "pass":
                    seen.setdefault(f["id"], set()).add(f["severity"])

            # Second weak broker: another plugin instead of ours, no audit trail,
            # nothing to follow to a PKI or a bridge.
            conf2 = env.write("mosquitto-2.conf", "plugin /usr/lib/other_auth.so\nlistener 8883 10.0.0.1\n"
                              "certfile x.crt\nrequire_certificate true\ntls_version tlsv1.2\n")
            p = run_doctor("--mosquitto-conf", conf2, "--json")
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            for f in json.loads(p.stdout)["findings"]:
                if f["severity"] != "pass":
                    seen.setdefault(f["id"], set()).add(f["severity"])
            # A mosquitto.conf that cannot be read, and a broken policy.
            bad = env.write("bad.conf", 'listener 8883 "unterminated\n')
            p = run_doctor("--mosquitto-conf", bad, "--policy", os.path.join(FIXTURES, "weak", "policy-broken.conf"),
                           "--json")
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            for f in json.loads(p.stdout)["findings"]:
                if f["severity"] != "pass":
                    seen.setdefault(f["id"], set()).add(f["severity"])

        listed = run_doctor("--list-checks")
        self.assertEqual(listed.returncode, 0)
        ids = [l.split()[0] for l in listed.stdout.splitlines()[1:] if l.strip()]
        # BR-CLOUD-LIMITS warns only when drain_byte_rate is set below the
        # largest max-payload; the unit test test_bridge_cloud_limits triggers it.
        missing = [i for i in ids if i not in seen and i not in ("BR-CLOUD-TLS", "BR-CLOUD-LIMITS")]
        self.assertEqual(missing, [], "checks not triggered by the weak deployment: %s\nseen: %s" % (missing, seen))
        for must in ("MQ-LISTENER-TLS", "MQ-ANONYMOUS", "MQ-REQUIRE-CERT", "MQ-IDENTITY-USERNAME",
                     "MQ-TLS-VERSION", "MQ-PLUGIN", "POL-WILDCARD", "POL-CROSS-DEVICE", "PKI-SHARED",
                     "PKI-CA-KEY", "PKI-CRL", "AUDIT-CHAIN", "BR-WHITELIST", "BR-HOSTNAME", "LIVE-NOCERT",
                     "POL-LOAD", "MQ-CONFIG"):
            self.assertIn("critical", seen[must], "%s: %s" % (must, seen[must]))

    def test_usage_errors(self):
        p = run_doctor("--no-such-option")
        self.assertEqual(p.returncode, 3)
        p = run_doctor("--broker", "127.0.0.1:1")
        self.assertEqual(p.returncode, 3)
        self.assertIn("--cert", p.stderr)
        p = run_doctor("--policy", os.path.join(FIXTURES, "good", "policy.conf"), "--now", "2026-13-01")
        self.assertEqual(p.returncode, 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
