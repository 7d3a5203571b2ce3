"""Files holding secrets must be their owner's alone: a password_file or a
console users file that the group or everyone may read is refused by
--check-config and at start (FILE:LINE or the --set that named it, exit 2);
the same files at mode 0600 pass. No broker or simulator is needed."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import faultlib  # noqa: F401  (puts tests/integration on sys.path)
from harness import DEMO_GW, ROOT, binary

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")


class SecretFileModeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="estate-secrets-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.password = os.path.join(self.dir, "gw.password")
        with open(self.password, "w") as f:
            f.write("not-a-real-password\n")
        self.users = os.path.join(self.dir, "users.conf")
        shutil.copy(DEMO_USERS, self.users)

    def gw(self, *sets, check=True):
        argv = [binary("estate-gw"), "-c", DEMO_GW,
                "--set", f"gateway.data_dir={self.dir}/data"]
        for s in sets:
            argv += ["--set", s]
        if check:
            argv.append("--check-config")
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def test_readable_password_file_refused(self):
        for mode in (0o644, 0o640, 0o604):
            os.chmod(self.password, mode)
            res = self.gw(f"mqtt.password_file={self.password}")
            self.assertEqual(res.returncode, 2, f"mode {oct(mode)}: {res.stdout}{res.stderr}")
            self.assertIn("mqtt.password_file", res.stderr)
            self.assertIn("chmod 600", res.stderr)
        # At start too: the daemon does not run.
        res = self.gw(f"mqtt.password_file={self.password}", check=False)
        self.assertEqual(res.returncode, 2, res.stderr)
        os.chmod(self.password, 0o600)
        res = self.gw(f"mqtt.password_file={self.password}")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_readable_users_file_refused(self):
        for mode in (0o644, 0o640):
            os.chmod(self.users, mode)
            res = self.gw(f"http.users_file={self.users}", "http.require_private_users_file=true")
            self.assertEqual(res.returncode, 2, f"mode {oct(mode)}: {res.stdout}{res.stderr}")
            self.assertIn("http.users_file", res.stderr)
        os.chmod(self.users, 0o600)
        res = self.gw(f"http.users_file={self.users}", "http.require_private_users_file=true")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_users_file_in_the_config_named_with_its_line(self):
        """The demo's own users file, when the demo's exemption is lifted:
        the error points at the users_file line of the config file."""
        os.chmod(self.users, 0o644)
        conf = os.path.join(self.dir, "gw.conf")
        with open(DEMO_GW) as f:
            text = f.read()
        text = text.replace('users_file = "users.conf";', f'users_file = "{self.users}";')
        text = re.sub(r"\n\s*require_private_users_file = false;[^\n]*", "", text)
        # Relative names in the demo config stay relative to its directory.
        for name in os.listdir(os.path.dirname(DEMO_GW)):
            src = os.path.join(os.path.dirname(DEMO_GW), name)
            if not os.path.exists(os.path.join(self.dir, name)):
                os.symlink(src, os.path.join(self.dir, name))
        with open(conf, "w") as f:
            f.write(text)
        res = subprocess.run([binary("estate-gw"), "-c", conf, "--set",
                              f"gateway.data_dir={self.dir}/data", "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if "users_file =" in l)
        self.assertRegex(res.stderr, rf"gw\.conf:{line}: http\.users_file: ")


if __name__ == "__main__":
    unittest.main()
