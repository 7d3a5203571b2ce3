"""A bad notify section stops estate-gw before it starts: an unknown
channel type, a secret file that is missing or that others may read, a
template with an unknown placeholder each give FILE:LINE and exit 2
(--check-config and a real start alike); fixed, the same config passes.
No broker or simulator is needed."""
import os
import shutil
import subprocess
import tempfile
import unittest

import faultlib  # noqa: F401  (puts tests/integration on sys.path)
from harness import DEMO_GW, ROOT, binary

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")
GOOD_CHANNEL = ('{ name = "w"; type = "wecom"; url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";'
                ' key_file = "wecom.key"; }')


class NotifyConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="estate-notify-conf-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.key = os.path.join(self.dir, "wecom.key")
        with open(self.key, "w") as f:
            f.write("KEY\n")
        os.chmod(self.key, 0o600)
        with open(DEMO_GW) as f:
            self.demo = f.read()
        self.conf = os.path.join(self.dir, "estate-gw.conf")

    def run_gw(self, channel, check=True):
        text = self.demo + f"\nnotify = {{\n  channels = (\n    {channel}\n  );\n}};\n"
        with open(self.conf, "w") as f:
            f.write(text)
        self.line = text.count("\n", 0, text.index(channel)) + 1
        argv = [binary("estate-gw"), "-c", self.conf, "--set", f"gateway.data_dir={self.dir}/data",
                "--set", f"http.users_file={DEMO_USERS}"]
        if check:
            argv.append("--check-config")
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def assert_refused(self, channel, message, check=True):
        res = self.run_gw(channel, check)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn(f"{self.conf}:{self.line}: {message}", res.stderr)

    def test_good_channel_passes(self):
        res = self.run_gw(GOOD_CHANNEL)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_unknown_channel_type(self):
        self.assert_refused('{ name = "t"; type = "telegram"; url = "https://x.example"; }',
                            "notify.channels[0].type: 'telegram' is not one of wecom, dingtalk, "
                            "feishu, http, smtp")

    def test_missing_secret_file(self):
        self.assert_refused(GOOD_CHANNEL.replace("wecom.key", "gone.key"),
                            f"notify.channels[0].key_file: cannot use '{self.dir}/gone.key'")

    def test_readable_secret_file(self):
        for mode in (0o644, 0o640):
            os.chmod(self.key, mode)
            for check in (True, False):  # --check-config, and a real start
                self.assert_refused(GOOD_CHANNEL, f"notify.channels[0].key_file: '{self.key}' holds "
                                    "secrets but", check)

    def test_unknown_placeholder(self):
        self.assert_refused('{ name = "sms"; type = "http"; url = "https://sms.example/send";'
                            ' body = "to={to}&text={txt}"; }',
                            "notify.channels[0].body: unknown placeholder {txt}")


if __name__ == "__main__":
    unittest.main()
