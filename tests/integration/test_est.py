"""Certificates that renew themselves: plantgate-est (EST over HTTPS) and
plantgate-enroll against a real PKI from scripts/pki, with curl as an
independent EST client, and a renewed device admitted by a real mosquitto
with plantgate_auth.so.  Everything on 127.0.0.1."""
import base64
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

EST_PATH = "/.well-known/est/"


def est_bin(name):
    return os.path.join(h.BUILD, "enroll", name + ("-asan" if h.ASAN else ""))


def run(argv, timeout=30):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout * h.SLOW)


class Est(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = h.Env("est")
        cls.pki = cls.env.pki()
        cls.tls = cls.pki.server("localhost")
        # The issuing key: a copy only plantgate-est's user can read.
        cls.issuer_key = cls.env.path("issuer.key")
        with open(cls.pki.ca_key) as src, open(cls.issuer_key, "w") as dst:
            dst.write(src.read())
        os.chmod(cls.issuer_key, 0o600)
        cls.audit = cls.env.path("est-audit.log")
        cls.est, cls.url = cls.start_est("est", "rate_identity 5 1h\nrate_address 1000 1m\n"
                                         "audit_log %s\n" % cls.audit)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def start_est(cls, name, extra):
        port = h.free_port()
        conf = cls.env.write(name + ".conf", "\n".join([
            "listen 127.0.0.1:%d" % port, "tls_cert %s" % cls.tls[0], "tls_key %s" % cls.tls[1],
            "pki_dir %s" % cls.pki.dir, "issuer_key %s" % cls.issuer_key, "cert_days 30",
            extra]))
        p = h.Proc(cls.env, name, [est_bin("plantgate-est"), "-c", conf])
        if not p.wait_log(r"listening on https://", 10):
            raise RuntimeError("plantgate-est did not start:\n" + p.log())
        return p, "https://localhost:%d" % port

    # ------------------------------------------------------------ helpers --
    def token(self, ident, site="hq", line="l9", ttl="1h"):
        out = self.pki.run("enroll-token", ident, "--site", site, "--line", line, "--ttl", ttl).stdout
        return out.splitlines()[1].strip()

    def csr(self, label, cn, keyalg=("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")):
        key = self.env.path(label + ".key")
        b64 = self.env.path(label + ".b64")
        subprocess.run(["openssl", "genpkey", *keyalg, "-out", key], check=True, capture_output=True)
        der = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + cn,
                              "-outform", "DER"], check=True, capture_output=True).stdout
        with open(b64, "w") as f:
            f.write(base64.encodebytes(der).decode())
        return key, b64

    def curl(self, path, *args, url=None):
        """curl as the independent EST client; returns (status, body)."""
        out = self.env.path("curl.out")
        p = run(["curl", "-sS", "--cacert", self.pki.ca, "-o", out, "-w", "%{http_code}",
                 *args, (url or self.url) + EST_PATH + path])
        body = ""
        if os.path.exists(out):
            with open(out) as f:
                body = f.read()
            os.unlink(out)
        return int(p.stdout or 0), body

    def enroll_curl(self, ident, token, b64, url=None):
        return self.curl("simpleenroll", "-u", "%s:%s" % (ident, token), "--data-binary", "@" + b64,
                         "-H", "Content-Type: application/pkcs10", url=url)

    def pem_of(self, body, name):
        p7 = self.env.path(name + ".p7")
        with open(p7, "wb") as f:
            f.write(base64.b64decode(body))
        pem = run(["openssl", "pkcs7", "-inform", "DER", "-in", p7, "-print_certs"]).stdout
        path = self.env.path(name + ".crt")
        with open(path, "w") as f:
            f.write(pem)
        return path

    def cert_field(self, crt, *opt):
        return run(["openssl", "x509", "-in", crt, "-noout", *opt]).stdout.strip()

    def enroll_tool(self, *args):
        return run([est_bin("plantgate-enroll"), "--server", self.url, "--ca", self.pki.ca, *args])

    def index(self):
        with open(os.path.join(self.pki.dir, "index.txt")) as f:
            return f.read()

    # -------------------------------------------------------------- tests --
    def test_cacerts_with_curl(self):
        status, body = self.curl("cacerts")
        self.assertEqual(status, 200)
        got = self.pem_of(body, "cacerts")
        self.assertEqual(self.cert_field(got, "-fingerprint", "-sha256"),
                         self.cert_field(self.pki.ca, "-fingerprint", "-sha256"))

    def test_token_enrollment_with_curl_and_replay(self):
        tok = self.token("press-07")
        key, b64 = self.csr("press-07", "press-07")
        status, body = self.enroll_curl("press-07", tok, b64)
        self.assertEqual(status, 200, body)
        crt = self.pem_of(body, "press-07")
        # Subject and SAN from the token, EKU clientAuth, key from the request.
        self.assertIn("L = hq, OU = l9, CN = press-07", self.cert_field(crt, "-subject"))
        self.assertIn("URI:urn:plantgate:device:press-07",
                      self.cert_field(crt, "-ext", "subjectAltName"))
        self.assertIn("TLS Web Client Authentication", self.cert_field(crt, "-ext", "extendedKeyUsage"))
        self.assertEqual(run(["openssl", "verify", "-CAfile", self.pki.ca, crt]).returncode, 0)
        self.assertEqual(run(["openssl", "pkey", "-in", key, "-pubout"]).stdout,
                         run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"]).stdout)
        serial = self.cert_field(crt, "-serial").split("=")[1]
        # Recorded like scripts/pki's own issuance: list, newcerts/.
        self.assertRegex(self.pki.run("list").stdout, r"%s\s+press-07\s+device\s+\S+\s+valid" % serial)
        self.assertTrue(os.path.exists(os.path.join(self.pki.dir, "newcerts", serial + ".pem")))
        # The token works once: a second request (another key) is a replay.
        _, again = self.csr("press-07-again", "press-07")
        status, body = self.enroll_curl("press-07", tok, again)
        self.assertEqual(status, 403)
        self.assertIn("already used", body)
        self.assertTrue(self.est.wait_log(r"refused simpleenroll identity=press-07 .*status=403", 5))
        with open(self.audit) as f:
            audit = f.read()
        self.assertRegex(audit, r'"event":"enroll","identity":"press-07".*"issued serial %s' % serial)
        self.assertRegex(audit, r'"event":"enroll-refused","identity":"press-07".*already used')

    def test_bad_requests_are_refused_and_do_not_burn_the_token(self):
        tok = self.token("weak-1")
        _, weak = self.csr("weak-1", "weak-1", ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"))
        status, body = self.enroll_curl("weak-1", tok, weak)
        self.assertEqual(status, 400)
        self.assertIn("RSA key of 1024 bits", body)
        garbage = self.env.write("garbage.b64", "<csr>not base64</csr>\n")
        status, body = self.enroll_curl("weak-1", tok, garbage)
        self.assertEqual(status, 400)
        self.assertIn("not base64", body)
        _, other = self.csr("weak-1-other", "press-99")
        status, body = self.enroll_curl("weak-1", tok, other)
        self.assertEqual(status, 403)
        self.assertIn("identity mismatch", body)
        _, good = self.csr("weak-1-good", "weak-1")
        status, body = self.curl("simpleenroll", "-u", "weak-1:" + tok, "-H", "Transfer-Encoding: chunked",
                                 "--data-binary", "@" + good)
        self.assertEqual(status, 411)
        self.assertIn("Content-Length", body)
        status, body = self.enroll_curl("weak-1", "0" * 40, good)
        self.assertEqual(status, 401)
        self.assertIn("unknown enrollment token", body)
        # The token survived all of that and still enrolls the device.
        d = self.env.path("weak-1-dev")
        os.makedirs(d)
        p = self.enroll_tool("--cert", d + "/c.pem", "--key", d + "/k.pem", "--id", "weak-1",
                             "--token", tok)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("enrolled", p.stdout)

    def test_renewal_and_the_plugin_broker(self):
        broker = self.env.plant_broker(self.pki, policy=policies.BASIC, plugin_opts={
            "revocation_file": os.path.join(self.pki.dir, "revoked.txt"), "crlfile": self.pki.crl})
        d = self.env.path("sensor-9")
        os.makedirs(d)
        crt, key = d + "/sensor-9.crt", d + "/sensor-9.key"
        p = self.enroll_tool("--cert", crt, "--key", key, "--id", "sensor-9",
                             "--token", self.token("sensor-9"))
        self.assertEqual(p.returncode, 0, p.stderr)
        first = self.cert_field(crt, "-serial")
        # Not due: nothing happens.
        p = self.enroll_tool("--cert", crt, "--key", key, "--renew-before", "7d")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("not due", p.stdout)
        self.assertEqual(self.cert_field(crt, "-serial"), first)
        # 30-day certificates, renew 40 days before: due now.
        old_crt, old_key = self.env.path("sensor-9-old.crt"), self.env.path("sensor-9-old.key")
        for src, dst in ((crt, old_crt), (key, old_key)):
            with open(src) as f, open(dst, "w") as g:
                g.write(f.read())
        p = self.enroll_tool("--cert", crt, "--key", key, "--renew-before", "40d")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("renewed", p.stdout)
        second = self.cert_field(crt, "-serial")
        self.assertNotEqual(second, first)
        self.assertIn("L = hq, OU = l9, CN = sensor-9", self.cert_field(crt, "-subject"))
        self.assertEqual(run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"]).stdout,
                         run(["openssl", "pkey", "-in", key, "-pubout"]).stdout)
        self.assertNotEqual(run(["openssl", "pkey", "-in", key, "-pubout"]).stdout,
                            run(["openssl", "pkey", "-in", old_key, "-pubout"]).stdout)
        # The running broker admits the renewed device at once (no reload).
        c = h.Client(self.env, broker, "sensor-9", self.pki.ca, crt, key)
        self.assertEqual(c.connect(), 0)
        self.assertTrue(c.publish("plant/hq/l9/sensor-9/telemetry/t", b"1", qos=1))
        c.disconnect()
        # old_cert revoke (the default): the old one is superseded in the CA
        # database and in revoked.txt, so after a reload the broker refuses it.
        rows = {r.split("\t")[3]: r for r in self.index().splitlines() if r.endswith("/CN=sensor-9")}
        self.assertTrue(rows[first.split("=")[1]].startswith("R\t"))
        self.assertIn(",superseded\t", rows[first.split("=")[1]])
        self.assertTrue(rows[second.split("=")[1]].startswith("V\t"))
        self.assertRegex(self.pki.run("list").stdout,
                         r"%s\s+sensor-9\s+device\s+\S+\s+valid \(EST\)" % second.split("=")[1])
        broker.reload()
        self.assertTrue(broker.wait_log(r"reloaded", 10))
        old = h.Client(self.env, broker, "sensor-9", self.pki.ca, old_crt, old_key)
        self.assertNotEqual(old.connect(), 0)
        c = h.Client(self.env, broker, "sensor-9", self.pki.ca, crt, key)
        self.assertEqual(c.connect(), 0)
        c.disconnect()
        # scripts/pki revoke and the CRL cover the renewed certificate.
        out = self.pki.run("revoke", "sensor-9").stdout
        self.assertIn(second.split("=")[1], out)
        crl = run(["openssl", "verify", "-CAfile", self.pki.ca, "-crl_check", "-CRLfile",
                   self.pki.crl, crt])
        self.assertIn("certificate revoked", crl.stdout + crl.stderr)
        # A revoked certificate cannot renew.
        p = self.enroll_tool("--cert", crt, "--key", key, "--force")
        self.assertEqual(p.returncode, 1)
        self.assertIn("403", p.stderr)
        self.assertIn("revoked", p.stderr)

    def test_lost_enrollment_answer_is_sent_again(self):
        tok = self.token("lost-2")
        k1, b64 = self.csr("lost-2", "lost-2")
        status, body = self.enroll_curl("lost-2", tok, b64)
        self.assertEqual(status, 200, body)
        issued = self.cert_field(self.pem_of(body, "lost-2-a"), "-serial")
        # The answer was lost: the same token and key get the same certificate.
        status, body = self.enroll_curl("lost-2", tok, b64)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.cert_field(self.pem_of(body, "lost-2-b"), "-serial"), issued)
        self.assertTrue(self.est.wait_log(r"re-sent: the answer to this token's enrollment was lost", 5))
        with open(os.path.join(self.pki.dir, "enroll-tokens.txt")) as f:
            self.assertIn(" used:%s\n" % issued.split("=")[1], f.read())
        # Anyone else with the token (another key) is a replay.
        _, other = self.csr("lost-2-other", "lost-2")
        status, body = self.enroll_curl("lost-2", tok, other)
        self.assertEqual(status, 403)
        self.assertIn("already used", body)

    def test_lost_renewal_answer_is_sent_again(self):
        d = self.env.path("lost-1")
        os.makedirs(d)
        crt, key = d + "/c.pem", d + "/k.pem"
        p = self.enroll_tool("--cert", crt, "--key", key, "--id", "lost-1", "--token",
                             self.token("lost-1"))
        self.assertEqual(p.returncode, 0, p.stderr)
        # The renewal is issued (the old certificate is superseded at once) but
        # its answer never reaches the device.
        k1, b64 = self.csr("lost-1-k1", "lost-1")
        status, body = self.curl("simplereenroll", "--cert", crt, "--key", key, "--data-binary", "@" + b64)
        self.assertEqual(status, 200, body)
        issued = self.cert_field(self.pem_of(body, "lost-1-n1"), "-serial")
        # Asked again with the same key: the same certificate, nothing new issued.
        rows = self.index().count("/CN=lost-1\n")
        status, body = self.curl("simplereenroll", "--cert", crt, "--key", key, "--data-binary", "@" + b64)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.cert_field(self.pem_of(body, "lost-1-n1b"), "-serial"), issued)
        self.assertEqual(self.index().count("/CN=lost-1\n"), rows)
        self.assertTrue(self.est.wait_log(r"re-sent: the answer to the renewal of serial", 5))
        # The old key with any other new key gets nothing: it is revoked.
        _, other = self.csr("lost-1-k2", "lost-1")
        status, body = self.curl("simplereenroll", "--cert", crt, "--key", key, "--data-binary", "@" + other)
        self.assertEqual(status, 403)
        self.assertIn("revoked", body)
        # plantgate-enroll keeps its new key as KEY.pending until the pair is in
        # place, so its next run gets that certificate.
        with open(k1) as f, open(key + ".pending", "w") as g:
            g.write(f.read())
        p = self.enroll_tool("--cert", crt, "--key", key, "--force")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.cert_field(crt, "-serial"), issued)
        self.assertEqual(run(["openssl", "pkey", "-in", key, "-pubout"]).stdout,
                         run(["openssl", "pkey", "-in", k1, "-pubout"]).stdout)
        self.assertFalse(os.path.exists(key + ".pending"))

    def test_interrupted_swap_is_finished(self):
        d = self.env.path("swap-1")
        os.makedirs(d)
        crt, key = d + "/c.pem", d + "/k.pem"
        p = self.enroll_tool("--cert", crt, "--key", key, "--id", "swap-1", "--token",
                             self.token("swap-1"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(crt) as f:
            first_crt = f.read()
        p = self.enroll_tool("--cert", crt, "--key", key, "--force")
        self.assertEqual(p.returncode, 0, p.stderr)
        # Put the device where a power cut between the two renames leaves it:
        # the new key in place, the old certificate, the new one still .new.
        os.rename(crt, crt + ".new")
        with open(crt, "w") as f:
            f.write(first_crt)

        def pair_ok():
            return (run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"]).stdout ==
                    run(["openssl", "pkey", "-in", key, "-pubout"]).stdout)
        self.assertFalse(pair_ok())
        p = self.enroll_tool("--cert", crt, "--key", key)  # not due: only the repair
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("finished an interrupted renewal", p.stderr)
        self.assertTrue(pair_ok())
        self.assertFalse(os.path.exists(crt + ".new"))
        # A key written without its certificate is dropped; the pair stays.
        with open(key + ".new", "w") as f:
            f.write("half-written")
        p = self.enroll_tool("--cert", crt, "--key", key)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists(key + ".new"))
        self.assertTrue(pair_ok())

    def test_expired_certificate_and_no_certificate_cannot_renew(self):
        crt, key = self.pki.device("old-1", site="hq", line="l9", start="20200101000000Z",
                                   end="20200201000000Z")
        _, b64 = self.csr("old-1", "old-1")
        status, body = self.curl("simplereenroll", "--cert", crt, "--key", key,
                                 "--data-binary", "@" + b64)
        self.assertEqual(status, 403)
        self.assertIn("expired", body)
        status, body = self.curl("simplereenroll", "--data-binary", "@" + b64)
        self.assertEqual(status, 403)
        self.assertIn("no client certificate", body)
        # A certificate of another CA with the same identity.
        rogue = self.env.pki("rogue")
        rcrt, rkey = rogue.device("old-2")
        status, body = self.curl("simplereenroll", "--cert", rcrt, "--key", rkey,
                                 "--data-binary", "@" + b64)
        self.assertEqual(status, 403)
        self.assertIn("does not verify", body)

    def test_shipped_config_checks(self):
        text = h.render(os.path.join(h.ROOT, "config", "est.conf"), [
            ("/etc/plantgate/pki/issued/est.plant.crt", self.tls[0]),
            ("/etc/plantgate/pki/private/est.plant.key", self.tls[1]),
            ("pki_dir /etc/plantgate/pki", "pki_dir " + self.pki.dir),
            ("/etc/plantgate/pki/intermediate/est-1.crt", self.pki.ca),
            ("/etc/plantgate/est/issuer.key", self.issuer_key),
            ("/var/log/plantgate/est-audit.log", self.env.path("shipped-audit.log"))])
        conf = self.env.write("shipped-est.conf", text)
        p = run([est_bin("plantgate-est"), "-c", conf, "-n"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)
        # The issuing key must be readable by plantgate-est's user only.
        os.chmod(self.issuer_key, 0o640)
        try:
            p = run([est_bin("plantgate-est"), "-c", conf, "-n"])
        finally:
            os.chmod(self.issuer_key, 0o600)
        self.assertEqual(p.returncode, 1)
        self.assertIn("chmod 600", p.stderr)

    def test_rate_limit_per_identity(self):
        _, b64 = self.csr("flood-1", "flood-1")
        codes = [self.enroll_curl("flood-1", "f" * 40, b64)[0] for _ in range(6)]
        self.assertEqual(codes, [401] * 5 + [429])
        self.assertTrue(self.est.wait_log(r"refused simpleenroll identity=flood-1 .*status=429", 5))

    def test_old_cert_expire_and_rate_limit_per_address(self):
        est, url = self.start_est("est-expire", "old_cert expire\nrate_address 3 1h\n")
        d = self.env.path("valve-3")
        os.makedirs(d)
        crt, key = d + "/c.pem", d + "/k.pem"
        base = [est_bin("plantgate-enroll"), "--server", url, "--ca", self.pki.ca,
                "--cert", crt, "--key", key]
        p = run(base + ["--id", "valve-3", "--token", self.token("valve-3")])
        self.assertEqual(p.returncode, 0, p.stderr)
        old = self.cert_field(crt, "-serial").split("=")[1]
        p = run(base + ["--force"])
        self.assertEqual(p.returncode, 0, p.stderr)
        new = self.cert_field(crt, "-serial").split("=")[1]
        rows = {r.split("\t")[3]: r for r in self.index().splitlines()}
        self.assertTrue(rows[old].startswith("V\t"), rows[old])
        self.assertTrue(rows[new].startswith("V\t"))
        with open(os.path.join(self.pki.dir, "revoked.txt")) as f:
            self.assertNotIn(old, f.read())
        # The third request from this address is the last one allowed.
        p = run(base + ["--force"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run(base + ["--force"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("answered 429", p.stderr)
        self.assertTrue(est.wait_log(r"refused simplereenroll .*status=429.*this address", 5))


class IntermediatePki(h.Pki):
    """A PKI whose root may sign one intermediate (scripts/pki init --intermediates)."""

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = os.path.join(env.tmp, name)
        self.run("init", "--name", "%s test CA" % name, "--intermediates")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "private", "ca.key")
        self.crl = os.path.join(self.dir, "crl.pem")
        self._issued = {}


class Intermediate(unittest.TestCase):
    """plantgate-est with an intermediate CA: the EST host never holds the root key."""

    def test_intermediate_issues_and_its_crl_reaches_the_broker(self):
        with h.Env("est-int") as env:
            pki = IntermediatePki(env, "plant")
            tls = pki.server("localhost")
            out = pki.run("intermediate", "est-1").stdout
            self.assertIn("client certificates only", out)
            self.assertRegex(pki.run("list").stdout, r"\S+\s+est-1\s+ca\s+\S+\s+valid")
            inter = os.path.join(pki.dir, "intermediate", "est-1.crt")
            # The intermediate's key goes to plantgate-est's user; the PKI keeps none.
            key_here = os.path.join(pki.dir, "private", "est-1.intermediate.key")
            issuer_key = env.path("issuer.key")
            os.rename(key_here, issuer_key)
            port = h.free_port()
            conf = env.write("est.conf", "\n".join([
                "listen 127.0.0.1:%d" % port, "tls_cert %s" % tls[0], "tls_key %s" % tls[1],
                "pki_dir %s" % pki.dir, "issuer_cert %s" % inter, "issuer_key %s" % issuer_key,
                "cert_days 30"]) + "\n")
            est = h.Proc(env, "est", [est_bin("plantgate-est"), "-c", conf])
            self.assertTrue(est.wait_log(r"listening on https://", 10), est.log())
            self.assertNotIn("is the root CA", est.log())
            self.assertTrue(est.wait_log(r"CRL of .*est-1.crt written", 10))
            with open(pki.crl) as f:
                self.assertEqual(f.read().count("BEGIN X509 CRL"), 2)  # root's and est-1's
            # The plugin's issuer pins name the intermediate next to the root
            # (config/mosquitto.conf's plugin_opt_issuer_cafile; docs/enrollment.md).
            with open(pki.ca) as f, open(inter) as g:
                pins = env.write("issuers.pem", f.read() + g.read())
            broker = env.plant_broker(pki, policy=policies.BASIC, plugin_opts={
                "revocation_file": os.path.join(pki.dir, "revoked.txt"), "crlfile": pki.crl,
                "issuer_cafile": pins})
            d = env.path("dev")
            os.makedirs(d)
            crt, key = d + "/sensor-9.crt", d + "/sensor-9.key"
            url = "https://localhost:%d" % port
            base = [est_bin("plantgate-enroll"), "--server", url, "--ca", pki.ca, "--cert", crt,
                    "--key", key]
            tok = pki.run("enroll-token", "sensor-9", "--site", "hq", "--line", "l9").stdout
            p = run(base + ["--id", "sensor-9", "--token", tok.splitlines()[1].strip()])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(crt) as f:
                self.assertEqual(f.read().count("BEGIN CERTIFICATE"), 2)  # leaf + est-1
            self.assertIn("CN = est-1", run(["openssl", "x509", "-in", crt, "-noout", "-issuer"]).stdout)
            # mosquitto (cafile = root, crlfile with both CRLs) and the plugin admit it.
            c = h.Client(env, broker, "sensor-9", pki.ca, crt, key)
            self.assertEqual(c.connect(), 0, c.error if hasattr(c, "error") else "")
            c.disconnect()
            # With only the root pinned, the plugin refuses the intermediate's devices.
            root_only = env.plant_broker(pki, policy=policies.BASIC, name="rootpin",
                                         plugin_opts={"issuer_cafile": pki.ca})
            c = h.Client(env, root_only, "sensor-9", pki.ca, crt, key)
            self.assertNotEqual(c.connect(), 0)
            self.assertTrue(root_only.wait_log(r"not issued by a pinned CA", 5))
            root_only.stop()
            old = run(["openssl", "x509", "-in", crt, "-noout", "-serial"]).stdout.strip().split("=")[1]
            with open(crt) as f:
                old_crt = env.write("old.crt", f.read())
            # Renewal over mutual TLS with the chain; the old one is superseded
            # and at once in est-1's CRL.
            p = run(base + ["--force"])
            self.assertEqual(p.returncode, 0, p.stderr)
            new = run(["openssl", "x509", "-in", crt, "-noout", "-serial"]).stdout.strip().split("=")[1]
            self.assertNotEqual(new, old)

            def verify(cert):
                v = run(["openssl", "verify", "-CAfile", pki.ca, "-untrusted", inter, "-crl_check",
                         "-CRLfile", pki.crl, cert])
                return v.stdout + v.stderr
            self.assertIn("certificate revoked", verify(old_crt))
            self.assertIn(": OK", verify(crt))
            # scripts/pki revoke covers it: plantgate-est sees index.txt change
            # and re-signs est-1's CRL; scripts/pki crl keeps it in crl.pem.
            pki.run("revoke", "sensor-9")
            self.assertTrue(h.wait_for(lambda: "certificate revoked" in verify(crt), 10 * h.SLOW))
            pki.run("crl")
            with open(pki.crl) as f:
                self.assertEqual(f.read().count("BEGIN X509 CRL"), 2)
            self.assertIn("certificate revoked", verify(crt))


if __name__ == "__main__":
    unittest.main(verbosity=2)
