"""estate-ctl acts as a real gateway user, refused exactly where the console
would refuse: the daemon maps the Unix account that runs estate-ctl to a
gateway user (ctl.unix_accounts); root may name a gateway user with --user
and that user's role applies; an unmapped account is refused. Every refused
call leaves the work orders and the patrol log as they were.

Runs estate-ctl as the Unix accounts `nobody` (mapped to frontdesk) and
`daemon` (not mapped) with setpriv, so it needs root, as the whole suite does
(scripts/test.sh installs packages)."""
import json
import os
import pwd
import subprocess
import unittest

from harness import Stack, binary, wait_for


class CtlRolesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("test_ctl_roles runs estate-ctl as other Unix accounts: run as root")
        cls.stack = Stack(gw_sets=["ctl.unix_accounts=nobody:frontdesk"])
        try:
            cls.stack.start()
            wait_for(lambda: cls.stack.readings(), 15, what="first readings")
            # Let the other accounts reach the database, as the package's
            # group does on a real install.
            for path in (cls.stack.workdir, cls.stack.data_dir):
                os.chmod(path, 0o777)
            for name in os.listdir(cls.stack.data_dir):
                os.chmod(os.path.join(cls.stack.data_dir, name), 0o666)
        except Exception:
            cls.stack.dump_logs()
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def ctl_as(self, account, *args):
        """estate-ctl run by a Unix account (None: root), with --json."""
        sets = [f"gateway.data_dir={self.stack.data_dir}", "gateway.site=test", "gateway.id=gw1"]
        argv = [binary("estate-ctl"), "-c", self.stack.gw_conf, "--json"] + \
            [a for s in sets for a in ("--set", s)] + list(args)
        if account is not None:
            gid = pwd.getpwnam(account).pw_gid
            argv = ["setpriv", f"--reuid={account}", f"--regid={gid}", "--clear-groups"] + argv
        env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)

    def state(self):
        """The work orders (id, state, history length) and the patrol log length."""
        res = self.ctl_as(None, "workorders", "--all")
        self.assertEqual(res.returncode, 0, res.stderr)
        orders = sorted((w["id"], w["state"]) for w in json.loads(res.stdout))
        res = self.ctl_as(None, "patrol", "log", "--limit", "100000")
        self.assertEqual(res.returncode, 0, res.stderr)
        return orders, len(json.loads(res.stdout))

    def assert_refused(self, res, why):
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn(why, res.stderr + res.stdout)

    def create_order(self, account, *user):
        res = self.ctl_as(account, *user, "workorder", "create", "--category", "electricity",
                          "--description", "socket sparks", "--unit", "1-101")
        self.assertEqual(res.returncode, 0, res.stderr + res.stdout)
        return json.loads(res.stdout)

    def test_a_mapped_account_acts_as_its_user_and_only_as_it(self):
        created = self.create_order("nobody")
        order = created.get("workorder", created)
        wid = str(order["id"])
        history = order.get("history") or []
        self.assertEqual(history[0]["who"] if history else None, "frontdesk", order)

        before = self.state()
        self.assert_refused(self.ctl_as("nobody", "--user", "supervisor", "workorder", wid, "verify",
                                        "--verifier", "x"),
                            "Unix account nobody acts as gateway user frontdesk")
        self.assert_refused(self.ctl_as("nobody", "workorder", wid, "verify", "--verifier", "x"),
                            "role frontdesk may not workorder verify")
        self.assertEqual(self.state(), before, "a refused call changed something")

        res = self.ctl_as("nobody", "patrol", "checkin", "--location", "gate", "--text", "round 1")
        self.assertEqual(res.returncode, 0, res.stderr)
        entries = json.loads(self.ctl_as(None, "patrol", "log", "--limit", "100000").stdout)
        self.assertEqual(entries[-1]["author"], "frontdesk", entries[-1])

    def test_root_names_a_user_whose_role_applies(self):
        wid = str(self.create_order(None, "--user", "frontdesk").get("workorder", {}).get("id", ""))
        self.assertTrue(wid)
        before = self.state()
        # The example of the issue: a viewer verifying a work order.
        self.assert_refused(self.ctl_as(None, "--user", "viewer", "workorder", wid, "verify",
                                        "--verifier", "x"),
                            "role viewer may not workorder verify")
        self.assert_refused(self.ctl_as(None, "--user", "viewer", "patrol", "checkin",
                                        "--location", "gate", "--text", "x"),
                            "role viewer may not patrol-checkin")
        self.assert_refused(self.ctl_as(None, "--user", "viewer", "unit", "1-101", "occupancy",
                                        "vacant"),
                            "role viewer may not occupancy")
        self.assert_refused(self.ctl_as(None, "--user", "nobody-such", "workorder", wid, "cancel"),
                            "unknown or disabled user")
        self.assertEqual(self.state(), before, "a refused call changed something")
        # The supervisor may, and is the one recorded.
        res = self.ctl_as(None, "--user", "supervisor", "workorder", wid, "cancel", "--note", "dup")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotEqual(self.state(), before)

    def test_an_unmapped_account_is_refused(self):
        before = self.state()
        self.assert_refused(self.ctl_as("daemon", "patrol", "checkin", "--location", "gate",
                                        "--text", "x"),
                            "Unix account daemon is not mapped to a gateway user")
        self.assert_refused(self.ctl_as("daemon", "--user", "supervisor", "unit", "1-101",
                                        "occupancy", "vacant"),
                            "Unix account daemon is not mapped to a gateway user")
        self.assertEqual(self.state(), before, "a refused call changed something")


if __name__ == "__main__":
    unittest.main(verbosity=2)
