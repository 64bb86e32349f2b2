"""Who may connect: only a device holding its own certificate from the plant
CA, with a well-formed identity, a client id bound to it, and a place in the
policy.  Real mosquitto with plantgate_auth.so, real certificates from
scripts/pki, paho-mqtt clients."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402


class Identity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = h.Env("identity")
        cls.pki = cls.env.pki()
        cls.broker = cls.env.plant_broker(cls.pki, policy=policies.BASIC)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def refused_in_log(self, reason_regex):
        return self.broker.wait_log(r"plantgate: connect refused: .*" + reason_regex, 5)

    def test_device_with_own_certificate_is_admitted(self):
        c = self.env.client(self.pki, "sensor-1", self.broker)
        self.assertEqual(c.connect(), 0)
        self.assertTrue(self.broker.wait_log(r'connect accepted: .*identity="sensor-1"', 5))
        c.disconnect()

    def test_no_certificate_is_refused(self):
        c = self.env.anonymous_client(self.pki, self.broker, clientid="sensor-1")
        self.assertNotEqual(c.connect(), 0)

    def test_username_and_password_do_not_replace_the_certificate(self):
        c = self.env.anonymous_client(self.pki, self.broker, clientid="sensor-1",
                                      username="sensor-1", password="guess")
        self.assertNotEqual(c.connect(), 0)

    def test_certificate_from_another_ca_is_refused(self):
        rogue = self.env.pki("rogue")
        c = h.Client(self.env, self.broker, "sensor-1", self.pki.ca, *rogue.device("sensor-1"))
        self.assertNotEqual(c.connect(), 0)

    def test_unknown_device_is_refused(self):
        c = self.env.client(self.pki, "stranger-7", self.broker)
        self.assertNotEqual(c.connect(), 0)
        self.assertTrue(self.refused_in_log(r'identity="stranger-7"'))

    def test_client_id_must_equal_identity(self):
        c = self.env.client(self.pki, "sensor-2", self.broker, clientid="something-else")
        self.assertNotEqual(c.connect(), 0)
        self.assertTrue(self.refused_in_log(r"client id is not bound"))

    def test_takeover_of_another_devices_session_is_refused(self):
        victim = self.env.client(self.pki, "hmi-1", self.broker)
        self.assertEqual(victim.connect(), 0)
        # sensor-2's valid certificate, hmi-1's client id: would take over hmi-1's
        # session and its subscriptions without a SUBSCRIBE re-check.
        thief = self.env.client(self.pki, "sensor-2", self.broker, clientid="hmi-1")
        self.assertNotEqual(thief.connect(), 0)
        self.assertFalse(victim.disconnected.is_set(), "the victim's session was taken over")
        victim.disconnect()

    def test_hostile_common_names_are_refused(self):
        # Even with a policy that admits any unknown identity, these never get in.
        with h.Env("identity-hostile") as env:
            pki = env.pki()
            broker = env.plant_broker(pki, policy=policies.PERMISSIVE_UNKNOWN)
            ok = env.client(pki, "plain-device", broker)
            self.assertEqual(ok.connect(), 0, "control: a plain identity is admitted")
            for label, cn in [("plus", "+"), ("hash", "#"), ("slash", "a/b"), ("dollar", "$SYS"),
                              ("wild", "dev+1"), ("space", " dev")]:
                crt, key = pki.raw_cert(label, cn)
                c = h.Client(env, broker, cn, pki.ca, crt, key)
                self.assertNotEqual(c.connect(), 0, "CN %r was admitted" % cn)
                c.disconnect()
            self.assertTrue(broker.wait_log(r"MQTT wildcard or '/'", 5))
            self.assertTrue(broker.wait_log(r"starts with '\$'", 5))

    def test_expired_and_not_yet_valid_certificates_are_refused(self):
        expired = self.pki.device("sensor-old", start="20200101000000Z", end="20200201000000Z")
        future = self.pki.device("sensor-new", start="20990101000000Z", end="20991231000000Z")
        for ident, cert in (("sensor-old", expired), ("sensor-new", future)):
            c = self.env.client(self.pki, ident, self.broker, cert=cert)
            self.assertNotEqual(c.connect(), 0, "%s was admitted" % ident)

    def test_mqtt311_device_is_admitted(self):
        c = self.env.client(self.pki, "sensor-2", self.broker, protocol=4)
        self.assertEqual(c.connect(), 0)
        c.disconnect()


class HostileCertificates(unittest.TestCase):
    """Issue 11, items 7 and 8: certificates an attacker on the LAN would try."""

    @classmethod
    def setUpClass(cls):
        cls.env = h.Env("identity-hostile2")
        cls.pki = cls.env.pki()
        # Any identity would be admitted by the policy: a refusal can only come
        # from the identity rules.
        cls.broker = cls.env.plant_broker(cls.pki, policy=policies.PERMISSIVE_UNKNOWN)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def raw_client(self, label, cn, ext=None, clientid=None):
        crt, key = self.pki.raw_cert(label, cn, ext=ext)
        return h.Client(self.env, self.broker, clientid or cn, self.pki.ca, crt, key)

    def test_ca_certificates_are_not_client_identities(self):
        for label, ext in [
            ("ca-true", ["basicConstraints = critical,CA:TRUE", "keyUsage = critical,digitalSignature,keyCertSign",
                         "extendedKeyUsage = clientAuth"]),
            ("certsign", ["keyUsage = critical,digitalSignature,keyCertSign", "extendedKeyUsage = clientAuth"]),
        ]:
            c = self.raw_client(label, label, ext)
            self.assertNotEqual(c.connect(), 0, "%s was admitted" % label)
            c.disconnect()
        self.assertTrue(self.broker.wait_log(
            r'connect refused: .*identity="ca-true" reason="certificate is a CA certificate \(basicConstraints CA:TRUE\)', 5))
        self.assertTrue(self.broker.wait_log(
            r'connect refused: .*identity="certsign" reason="certificate may sign certificates \(keyUsage keyCertSign\)', 5))

    def test_identity_that_would_forge_log_fields_is_refused_and_escaped(self):
        cn = 'sensor-q" role=ops x="'
        # A plain client id: mosquitto's own lines print client ids as they are.
        c = self.raw_client("quote", cn, clientid="quote")
        self.assertNotEqual(c.connect(), 0, "an identity with quotes was admitted")
        self.assertTrue(self.broker.wait_log(r'connect refused: .*client_id="quote" .*reason="identity contains a', 5))
        # Client-controlled text is escaped in the plugin's lines.
        e = self.raw_client("cidquote", "plain-q", clientid='x" role=ops y="')
        self.assertNotEqual(e.connect(), 0)
        self.assertTrue(self.broker.wait_log(r'connect refused: .*client_id="x\? role=ops y=\?"', 5))
        d = self.raw_client("cidquote", "plain-q")
        self.assertEqual(d.connect(), 0)
        d.c.publish('nope/" role=ops z="', b"x", qos=1)
        self.assertTrue(self.broker.wait_log(r'publish denied: identity="plain-q" topic="nope/\? role=ops z=\?"', 5))
        plugin_lines = [line for line in self.broker.log().splitlines() if "plantgate:" in line]
        self.assertFalse([line for line in plugin_lines if '" role=ops' in line], plugin_lines)

    def test_identities_scripts_pki_would_not_issue_are_refused(self):
        for label, cn in [("blank", "sensor a"), ("accent", "capteur-é"), ("equals", "a=b")]:
            c = self.raw_client(label, cn)
            self.assertNotEqual(c.connect(), 0, "CN %r was admitted" % cn)
            c.disconnect()
        self.assertTrue(self.broker.wait_log(r"identity contains a character other than A-Z a-z 0-9", 5))


class PrefixClientIds(unittest.TestCase):
    """Issue 11, item 6: with `clientid prefix`, a client id that is or could be
    another identity is refused (docs/policy.md says which ones prefix allows)."""

    POLICY = """
default deny
unknown-devices refuse
role sensor
  publish open/%{id}/#
end
device sensor-a   role sensor
device sensor-a-b role sensor
devices matching cam-* role sensor
"""

    def test_prefix_cannot_take_over_another_device(self):
        with h.Env("identity-prefix") as env:
            pki = env.pki()
            broker = env.plant_broker(pki, policy=self.POLICY, plugin_opts={"clientid": "prefix"})
            victim = env.client(pki, "sensor-a-b", broker, clean=False)
            self.assertEqual(victim.connect(), 0)
            thief = env.client(pki, "sensor-a", broker, clientid="sensor-a-b")
            self.assertNotEqual(thief.connect(), 0, "sensor-a took client id sensor-a-b")
            self.assertTrue(broker.wait_log(r"client id could be another device's identity", 5))
            time.sleep(0.3)
            self.assertFalse(victim.disconnected.is_set(), "the real sensor-a-b was kicked")
            # A suffix no identity of the policy can have is fine ...
            ok = env.client(pki, "sensor-a", broker, clientid="sensor-a-probe")
            self.assertEqual(ok.connect(), 0)
            # ... but not one a `devices matching` pattern would admit.
            cam = env.client(pki, "cam-1", broker, clientid="cam-1-2")
            self.assertNotEqual(cam.connect(), 0, "cam-1 took a client id cam-* admits as an identity")
            # A reload that makes a held client id another device's identity
            # disconnects its holder.
            with open(env.path("plant-policy.conf"), "w") as f:
                f.write(self.POLICY + "device sensor-a-probe role sensor\n")
            broker.reload()
            self.assertTrue(ok.wait_disconnect(10), "sensor-a kept client id sensor-a-probe")
            self.assertTrue(broker.wait_log(
                r'kick: identity="sensor-a" reason="its client id could now be another device', 5))
            self.assertFalse(victim.disconnected.is_set())


class IdentitySources(unittest.TestCase):
    def test_san_uri_identity_and_prefix_binding(self):
        with h.Env("identity-san") as env:
            pki = env.pki()
            broker = env.plant_broker(pki, policy=policies.BASIC, plugin_opts={
                "identity_source": "san-uri", "clientid": "prefix"})
            # scripts/pki puts urn:plantgate:device:<ID> in the SAN.
            c = env.client(pki, "sensor-1", broker, clientid="sensor-1-probe")
            self.assertEqual(c.connect(), 0)
            # A CN that claims sensor-2 with a SAN URI of sensor-1: the SAN wins.
            crt, key = pki.raw_cert("mixed", "sensor-2", san_uri="urn:plantgate:device:sensor-1")
            c2 = h.Client(env, broker, "sensor-2", pki.ca, crt, key)
            self.assertNotEqual(c2.connect(), 0)
            # A certificate without a matching SAN URI is refused.
            crt, key = pki.raw_cert("nosan", "sensor-1")
            c3 = h.Client(env, broker, "sensor-1", pki.ca, crt, key)
            self.assertNotEqual(c3.connect(), 0)
            self.assertTrue(broker.wait_log(r"no subjectAltName|no SAN URI with the configured prefix", 5))

    def test_issuer_pinning_refuses_a_second_trusted_ca(self):
        with h.Env("identity-pin") as env:
            pki = env.pki()
            other = env.pki("other")
            bundle = env.write("bundle.pem", open(pki.ca).read() + open(other.ca).read())
            port = h.free_port()
            cert, key = pki.server("localhost")
            policy = env.write("policy.conf", policies.BASIC)
            conf = "\n".join([
                "per_listener_settings false", "allow_anonymous false", "log_dest stderr",
                "log_type all", "plugin %s" % h.plugin_path(), "plugin_opt_policy %s" % policy,
                "plugin_opt_issuer_cafile %s" % pki.ca,
                h.PLANT_TLS.format(port=port, ca=bundle, cert=cert, key=key, crl=pki.crl)
                .replace("crlfile %s\n" % pki.crl, "")])
            broker = h.Broker(env, "plant", conf + "\n", port)
            good = env.client(pki, "sensor-1", broker)
            self.assertEqual(good.connect(), 0)
            bad = h.Client(env, broker, "sensor-2", pki.ca, *other.device("sensor-2"))
            self.assertNotEqual(bad.connect(), 0)
            self.assertTrue(broker.wait_log(r"not issued by a pinned CA", 5))


if __name__ == "__main__":
    unittest.main(verbosity=2)
