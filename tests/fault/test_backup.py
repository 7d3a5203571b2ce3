"""Backups: `estate-ctl backup` copies the database while the gateway writes
heavily (5 polls/s per bus) and verifies the copy; `estate-ctl restore`
refuses while the gateway runs and refuses a copy whose patrol chain is
broken; the good copy, restored with the gateway stopped, passes
integrity_check and `estate-ctl patrol verify`, keeps the replaced database
and the gateway starts on it. The daily backup (gateway.backup_at) is taken
by the running gateway and keeps the newest gateway.backup_keep copies."""
import glob
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time

from faultlib import FaultCase, db_path, integrity_check, log_lines, scalar, wait_for

FAST = [f"buses.{bus}.poll_interval_ms=200" for bus in ("gw_a", "gw_b", "fire")]


class BackupTest(FaultCase):
    def test_backup_during_heavy_writes_and_restore(self):
        stack = self.stack(gw_sets=FAST).start()
        wait_for(lambda: stack.readings(), 30, what="first readings")
        for i in range(3):
            stack.ctl("patrol", "checkin", "--location", "plant room", "--text", f"round {i}")
        stack.ctl("patrol", "anchor", "--to", "printed")
        wait_for(lambda: (scalar(stack, "SELECT count(*) FROM readings") or 0) > 50, 30,
                 what="readings stored")

        # Heavy writes go on (polling, and patrol entries through the daemon)
        # while the backups are taken.
        stop = threading.Event()

        def checkins():
            n = 0
            while not stop.is_set():
                stack.ctl("patrol", "checkin", "--location", "roof", "--text", f"busy {n}",
                          check=False)
                n += 1

        writer = threading.Thread(target=checkins)
        writer.start()
        backups = os.path.join(stack.workdir, "backups")
        try:
            t0 = time.time()
            res = stack.ctl("backup", backups)
            took = time.time() - t0
            default = stack.ctl("backup")
        finally:
            stop.set()
            writer.join()
        print(f"\nbackup took {took:.2f} s")
        out = res.stdout
        self.assertIn("integrity_check: ok", out)
        self.assertRegex(out, r"patrol chain: intact, \d+ entries")
        self.assertIn("archive anchors: 1 checked, all match", out)
        files = glob.glob(os.path.join(backups, "estate-*.db"))
        self.assertEqual(len(files), 1, files)
        copy = files[0]
        self.assertRegex(os.path.basename(copy), r"^estate-\d{8}-\d{6}\.db$")
        self.assertEqual(stat.S_IMODE(os.stat(copy).st_mode), 0o600)
        self.assertEqual(glob.glob(os.path.join(backups, "*.partial")), [])
        self.assertEqual(len(glob.glob(os.path.join(stack.data_dir, "backups", "estate-*.db"))),
                         1, default.stdout + default.stderr)
        copied_entries = sqlite3.connect(copy).execute("SELECT count(*) FROM patrol").fetchone()[0]
        self.assertGreaterEqual(copied_entries, 3)

        # A copy whose patrol log was edited: refused, even with the gateway stopped.
        forged = os.path.join(stack.workdir, "forged.db")
        shutil.copy(copy, forged)
        con = sqlite3.connect(forged)
        con.executescript("DROP TRIGGER patrol_no_update;"
                          "UPDATE patrol SET text = 'nothing happened' WHERE seq = 2;")
        con.close()

        # While the gateway runs: refused, the live database untouched.
        running = stack.ctl("restore", copy, check=False)
        self.assertEqual(running.returncode, 1, running.stdout + running.stderr)
        self.assertIn("estate-gw running", running.stderr)

        self.assertEqual(stack.gw.stop(signal.SIGTERM), 0)
        live_entries = scalar(stack, "SELECT count(*) FROM patrol")
        self.assertGreater(live_entries, copied_entries - 1)

        broken = stack.ctl("restore", forged, check=False)
        self.assertEqual(broken.returncode, 1, broken.stdout + broken.stderr)
        self.assertIn("BROKEN at seq 2", broken.stdout)
        self.assertEqual(scalar(stack, "SELECT count(*) FROM patrol"), live_entries,
                         "the live database is untouched by a refused restore")
        self.assertEqual(glob.glob(db_path(stack) + ".before-restore-*"), [])

        # Stopped, a good copy: restored.
        good = stack.ctl("restore", copy, check=False)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        kept = glob.glob(db_path(stack) + ".before-restore-*")
        self.assertEqual(len(kept), 1)
        self.assertEqual(sqlite3.connect(kept[0]).execute(
            "SELECT count(*) FROM patrol").fetchone()[0], live_entries)
        self.assertFalse(os.path.exists(db_path(stack) + "-wal"))
        self.assertFalse(os.path.exists(db_path(stack) + "-shm"))
        self.assertEqual(integrity_check(stack), "ok")
        verify = stack.ctl("patrol", "verify", check=False)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertEqual(scalar(stack, "SELECT count(*) FROM patrol"), copied_entries)

        # The gateway runs on the restored database.
        stack.restart_gw()
        wait_for(lambda: len(log_lines(stack, r"core: running")) >= 2, 20,
                 what="the gateway on the restored database")
        since = time.time()
        wait_for(lambda: stack.readings(since), 20, what="readings after the restore")
        self.assertEqual(stack.gw.stop(signal.SIGTERM), 0)
        verify = stack.ctl("patrol", "verify", check=False)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    def test_backup_of_a_damaged_database_is_deleted(self):
        """A copy that fails verification is not kept: exit 1, no file."""
        stack = self.stack().start()
        wait_for(lambda: (scalar(stack, "SELECT count(*) FROM readings") or 0) > 0, 30,
                 what="readings stored")
        stack.ctl("patrol", "checkin", "--location", "gate", "--text", "one")
        stack.ctl("patrol", "checkin", "--location", "gate", "--text", "two")
        self.assertEqual(stack.gw.stop(signal.SIGTERM), 0)
        con = sqlite3.connect(db_path(stack))
        con.executescript("DROP TRIGGER patrol_no_update;"
                          "UPDATE patrol SET text = 'forged' WHERE seq = 1;")
        con.close()
        backups = os.path.join(stack.workdir, "backups")
        res = stack.ctl("backup", backups, check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("deleted", res.stderr)
        self.assertEqual(os.listdir(backups), [])

    def test_daily_backup_keeps_the_newest(self):
        backups = tempfile.mkdtemp(prefix="estate-backups-")
        self.addCleanup(shutil.rmtree, backups, True)
        old = [f"estate-2020010{d}-033000.db" for d in range(1, 5)]
        for name in old + ["notes.txt"]:
            with open(os.path.join(backups, name), "w") as f:
                f.write("an older backup\n")
        # 00:00: the backup of today is due at once (none of today is there).
        stack = self.stack(gw_sets=FAST + [f"gateway.backup_dir={backups}",
                                           "gateway.backup_at=00:00",
                                           "gateway.backup_keep=3"]).start()
        wait_for(lambda: log_lines(stack, r"store: backup .* taken"), 30,
                 what="the daily backup")
        names = sorted(os.listdir(backups))
        self.assertEqual(len(names), 4, names)
        self.assertEqual(names[:2], old[2:], "the two newest older backups are kept")
        self.assertEqual(names[3], "notes.txt", "other files are left alone")
        new = os.path.join(backups, names[2])
        self.assertRegex(names[2], r"^estate-\d{8}-\d{6}\.db$")
        self.assertEqual(stat.S_IMODE(os.stat(new).st_mode), 0o600)
        res = subprocess.run(["sqlite3", new, "PRAGMA integrity_check"], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.stdout.strip(), "ok")
        self.assertEqual(len(log_lines(stack, r"store: backup .* deleted")), 2)
        # Taken once a day: a later check finds today's and does nothing.
        time.sleep(1)
        stack.restart_gw()
        wait_for(lambda: len(log_lines(stack, r"core: running")) >= 2, 20, what="the restart")
        time.sleep(4)
        self.assertEqual(len(log_lines(stack, r"store: backup .* taken")), 1)
        self.assertEqual(sorted(os.listdir(backups)), names)
