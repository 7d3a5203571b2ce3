"""Issue 5, security: MQTT over TLS with a client certificate, and
username + password from a file.

A throwaway CA, server and client certificates are made with the openssl CLI
in a temp dir; mosquitto gets a TLS listener on a free loopback port that
requires a client certificate signed by that CA. estate-gw connects with
mqtt.uri=ssl://... and ca_file/cert_file/key_file: readings and the retained
status arrive (seen by a subscriber that also uses TLS and a client cert).
Without the client certificate the gateway does not connect: it logs an
error and keeps running. A second broker requires a password
(mosquitto_passwd): the gateway connects with username + password_file, a
wrong password is refused, and the password never appears in its log."""
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from rtu_site import wait_for  # also puts tests/integration on sys.path
from harness import Stack, wait_port


def openssl(workdir, *args):
    subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True, timeout=60)


def make_pki(workdir):
    """CA, server cert for 127.0.0.1 (SAN IP) and a client cert, all PEM."""
    with open(os.path.join(workdir, "server.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "extendedKeyUsage = serverAuth\n")
    with open(os.path.join(workdir, "client.ext"), "w") as f:
        f.write("extendedKeyUsage = clientAuth\n")
    openssl(workdir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=estate-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
    for name, cn in (("server", "127.0.0.1"), ("client", "estate-gw-test")):
        openssl(workdir, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl(workdir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                "ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt")
    for name in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(workdir, name), 0o600)
    return {n: os.path.join(workdir, n) for n in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class TlsSubscriber:
    """Collects messages under a topic filter over TLS with a client cert."""

    def __init__(self, port, topic, pki):
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=f"tls-test-{os.getpid()}-{time.time_ns()}")
        self.client.tls_set(ca_certs=pki["ca.crt"], certfile=pki["client.crt"],
                            keyfile=pki["client.key"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((time.time(), msg.topic, msg.payload))

    def topics(self):
        with self.lock:
            return [t for _, t, p in self.messages if p]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def keep_user():
    """Run as root, mosquitto drops to user "mosquitto", which cannot read
    the 0600 keys and password file in our 0700 temp dirs: keep the user."""
    return "user root\n" if os.geteuid() == 0 else ""


def tls_listener_conf(pki):
    # Harness writes "listener PORT 127.0.0.1" first (and, as root, "user
    # root"): these apply to it.
    return (f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
            "require_certificate true\ntls_version tlsv1.2\n")


def rewrite_broker_conf(broker, extra):
    with open(broker.conf, "a") as f:
        f.write(extra)


class TlsClientCertTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="estate-pki-")
        cls.pki = make_pki(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def stack(self, gw_tls_sets):
        stack = Stack(gw_sets=gw_tls_sets, endpoints=("gw_a", "gw_b", "fire"))
        rewrite_broker_conf(stack.broker, tls_listener_conf(self.pki))
        self.addCleanup(stack.close)
        uri = f"ssl://127.0.0.1:{stack.broker.port}"
        stack.gw_argv += ["--set", f"mqtt.uri={uri}"]
        stack.gw.argv = stack.gw_argv
        return stack

    def start(self, stack):
        stack.broker.start()
        stack.sim.start()
        wait_port(stack.control_port)
        for p in stack.ports.values():
            wait_port(p)
        stack.gw.start()

    def assert_plain_client_refused(self, port):
        """A plain-TCP MQTT client reaches the TLS listener (the TCP connect
        succeeds) but gets no CONNACK: the listener drops the connection."""
        plain = mqtt.Client(client_id=f"plain-{time.time_ns()}")
        connacks = []
        plain.on_connect = lambda client, userdata, flags, rc: connacks.append(rc)
        plain.connect("127.0.0.1", port, keepalive=5)
        rc = mqtt.MQTT_ERR_SUCCESS
        deadline = time.monotonic() + 10
        while rc == mqtt.MQTT_ERR_SUCCESS and time.monotonic() < deadline:
            rc = plain.loop(timeout=0.5)
        self.assertEqual(connacks, [], "a plain-TCP client must get no CONNACK from the TLS listener")
        self.assertFalse(plain.is_connected())
        self.assertIn(rc, (mqtt.MQTT_ERR_CONN_LOST, mqtt.MQTT_ERR_PROTOCOL),
                      f"the TLS listener must drop a plain-TCP client within 10 s; loop gave "
                      f"{rc} ({mqtt.error_string(rc)})")

    def test_client_certificate_readings_and_status_arrive(self):
        p = self.pki
        stack = self.stack([f"mqtt.ca_file={p['ca.crt']}", f"mqtt.cert_file={p['client.crt']}",
                            f"mqtt.key_file={p['client.key']}"])
        self.start(stack)
        sub = TlsSubscriber(stack.broker.port, stack.prefix + "/#", p)
        self.addCleanup(sub.close)
        try:
            wait_for(lambda: stack.prefix + "/status" in sub.topics(), 20, what="status over TLS")
            wait_for(lambda: any(t.endswith("/reading") for t in sub.topics()), 20,
                     what="readings over TLS")
        except AssertionError:
            stack.dump_logs()
            raise
        self.assertIn("connected to ssl://", stack.gw.output())
        self.assert_plain_client_refused(stack.broker.port)

    def test_without_client_certificate_not_connected_and_keeps_running(self):
        stack = self.stack([f"mqtt.ca_file={self.pki['ca.crt']}"])
        self.start(stack)
        sub = TlsSubscriber(stack.broker.port, stack.prefix + "/#", self.pki)
        self.addCleanup(sub.close)
        wait_for(lambda: "cannot connect" in stack.gw.output(), 20, what="a connect error in the log")
        time.sleep(3)
        self.assertTrue(stack.gw.alive(), "the gateway must keep running")
        self.assertNotIn("connected to ssl://", stack.gw.output())
        self.assertEqual(sub.topics(), [], "nothing may arrive without a client certificate")
        log = stack.gw.output()
        self.assertRegex(log, r"(?m)^\S+ error mqtt: ")  # logged as an error, not only a warning


class PasswordFileTest(unittest.TestCase):
    PASSWORD = "s3cret-Pa55-never-logged"

    def test_username_and_password_file(self):
        workdir = tempfile.mkdtemp(prefix="estate-passwd-")
        self.addCleanup(shutil.rmtree, workdir, True)
        passwd = os.path.join(workdir, "mosquitto.passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "estate-gw", self.PASSWORD],
                       check=True, capture_output=True, timeout=30)
        os.chmod(passwd, 0o600)
        good = os.path.join(workdir, "gw.password")
        with open(good, "w") as f:
            f.write(self.PASSWORD + "\n")
        os.chmod(good, 0o600)
        bad = os.path.join(workdir, "wrong.password")
        with open(bad, "w") as f:
            f.write("wrong-" + self.PASSWORD + "\n")
        os.chmod(bad, 0o600)

        for password_file, expect_ok in ((good, True), (bad, False)):
            stack = Stack(gw_sets=["mqtt.username=estate-gw",
                                   f"mqtt.password_file={password_file}"])
            self.addCleanup(stack.close)
            with open(stack.broker.conf, "w") as f:
                f.write(keep_user() +
                        f"listener {stack.broker.port} 127.0.0.1\nallow_anonymous false\n"
                        f"password_file {passwd}\npersistence false\n")
            stack.broker.start()
            stack.sim.start()
            wait_port(stack.control_port)
            stack.gw.start()
            # The test's subscriber authenticates too.
            seen = []
            c = mqtt.Client(client_id=f"pw-test-{time.time_ns()}")
            c.username_pw_set("estate-gw", self.PASSWORD)
            c.on_connect = lambda cl, u, f, rc: cl.subscribe(stack.prefix + "/status", 1)
            c.on_message = lambda cl, u, m: seen.append(m.payload)
            c.connect("127.0.0.1", stack.broker.port, 30)
            c.loop_start()
            self.addCleanup(c.loop_stop)
            if expect_ok:
                wait_for(lambda: any(b"online" in p for p in seen), 20, what="status with password")
            else:
                wait_for(lambda: "cannot connect" in stack.gw.output(), 20,
                         what="refused with a wrong password")
                time.sleep(1)
                self.assertFalse(any(b"online" in p for p in seen))
                self.assertTrue(stack.gw.alive())
            stack.gw.stop()
            log = stack.gw.output()
            self.assertNotIn(self.PASSWORD, log)
            # Nothing the gateway writes keeps the password either.
            for root, _, files in os.walk(stack.data_dir):
                for name in files:
                    with open(os.path.join(root, name), "rb") as f:
                        self.assertNotIn(self.PASSWORD.encode(), f.read(), name)
            c.loop_stop()
            c.disconnect()


if __name__ == "__main__":
    unittest.main(verbosity=2)
