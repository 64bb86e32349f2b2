"""plantgate-policy, the operator's tool, on the shipped config/policy.example:
`check` passes, a broken file fails with file:line, and `explain` gives the
expected answer (exit 0 allow, 2 deny) and the deciding rule for each shipped
role."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

TOOL = os.path.join(h.BUILD, "plugin", "plantgate-policy")
EXAMPLE = os.path.join(h.ROOT, "config", "policy.example")

# (identity, extra args, access, topic, expected exit code)
CASES = [
    ("sensor-a1", ["--attr", "site=hq", "--attr", "line=line1"], "--publish", "plant/hq/line1/sensor-a1/telemetry/temp", 0),
    ("sensor-a1", ["--attr", "site=hq", "--attr", "line=line1"], "--publish", "plant/hq/line1/sensor-b2/telemetry/temp", 2),
    ("sensor-a1", ["--attr", "site=hq", "--attr", "line=line1"], "--publish", "plant/hq/line1/press-01/command/stop", 2),
    ("sensor-a1", ["--attr", "site=hq", "--attr", "line=line1"], "--read", "plant/hq/line1/sensor-a1/config/rate", 0),
    ("temp-l2-07", [], "--publish", "plant/hq/line2/temp-l2-07/telemetry/t", 0),
    ("press-01", [], "--read", "plant/hq/line1/press-01/command/stop", 0),
    ("press-01", [], "--read", "plant/hq/line1/press-02/command/stop", 2),
    ("press-01", [], "--subscribe", "plant/hq/line1/+/command/#", 2),
    ("hmi-line1", [], "--subscribe", "plant/hq/line1/+/telemetry/#", 0),
    ("hmi-line1", [], "--subscribe", "plant/hq/line2/+/telemetry/#", 2),
    ("hmi-line1", [], "--publish", "plant/hq/line1/press-01/command/stop", 2),
    ("eng-tanaka", [], "--publish", "plant/hq/line1/press-01/command/stop", 0),
    ("eng-tanaka", [], "--publish", "plant/hq/line2/press-02/command/stop", 2),
    ("bridge-01", [], "--subscribe", "plant/+/+/+/telemetry/#", 0),
    ("bridge-01", [], "--read", "plant/hq/line1/sensor-a1/telemetry/raw/vib", 2),
    ("bridge-01", [], "--read", "plant/hq/line1/press-01/command/stop", 2),
    ("ops-console", [], "--subscribe", "$SYS/#", 0),
    ("hmi-line1", [], "--subscribe", "$SYS/#", 2),
    ("stranger", [], "--publish", "plant/hq/line1/stranger/telemetry/t", 2),
]


class PolicyTool(unittest.TestCase):
    def run_tool(self, *args):
        return subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=30)

    def test_check_example(self):
        p = self.run_tool("check", EXAMPLE)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("configuration OK", p.stdout)

    def test_check_broken_names_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("default deny\nrole r\n  publish a/#/b\nend\n")
        try:
            p = self.run_tool("check", f.name)
            self.assertEqual(p.returncode, 1)
            self.assertIn("%s:3: " % f.name, p.stdout + p.stderr)
        finally:
            os.unlink(f.name)

    def test_explain_each_shipped_role(self):
        for ident, extra, access, topic, want in CASES:
            with self.subTest(identity=ident, access=access, topic=topic):
                p = self.run_tool("explain", EXAMPLE, "--id", ident, *extra, access, topic)
                self.assertEqual(p.returncode, want, p.stdout + p.stderr)
                self.assertIn("ALLOW" if want == 0 else "DENY", p.stdout)
                if want == 0:
                    self.assertRegex(p.stdout, r"policy.example:\d+: ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
