"""A broker certificate the gateway refuses is named in its log: a
certificate for another name, one from a CA the gateway does not trust and
an expired one each give OpenSSL's reason ("IP address mismatch", "unable to
get local issuer certificate", "certificate has expired"), not only "no
connection"; the gateway keeps running and retrying. Certificates are made
in a temp dir (openssl CLI, and python's cryptography for the expired one)."""
import datetime
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from rtu_site import wait_for  # also puts tests/integration on sys.path
from harness import Stack, wait_port
from test_tls import make_pki, openssl


def server_cert(workdir, name, san, ca="ca"):
    """A server certificate for san (openssl extension text) signed by ca."""
    with open(os.path.join(workdir, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName = {san}\nextendedKeyUsage = serverAuth\n")
    openssl(workdir, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
    openssl(workdir, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
            f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}.crt")
    os.chmod(os.path.join(workdir, f"{name}.key"), 0o600)


def expired_server_cert(workdir, name):
    """A certificate for 127.0.0.1 signed by the CA that expired yesterday."""
    with open(os.path.join(workdir, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(workdir, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(workdir, "server.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=3))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(workdir, f"{name}.crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    shutil.copy(os.path.join(workdir, "server.key"), os.path.join(workdir, f"{name}.key"))


class TlsNamedFailureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="estate-pki-names-")
        cls.pki = make_pki(cls.dir)
        server_cert(cls.dir, "wrongname", "DNS:wrong.example")
        openssl(cls.dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=other-ca", "-keyout", "other.key", "-out", "other.crt")
        server_cert(cls.dir, "othersigned", "IP:127.0.0.1", ca="other")
        expired_server_cert(cls.dir, "expired")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def gateway_log_for(self, server):
        """Starts a TLS broker with server.crt/key and the gateway; waits for
        its connection error and returns the log."""
        d = self.dir
        stack = Stack(gw_sets=[f"mqtt.ca_file={d}/ca.crt", f"mqtt.cert_file={d}/client.crt",
                               f"mqtt.key_file={d}/client.key"])
        self.addCleanup(stack.close)
        with open(stack.broker.conf, "a") as f:
            f.write(f"cafile {d}/ca.crt\ncertfile {d}/{server}.crt\n"
                    f"keyfile {d}/{server}.key\nrequire_certificate true\n")
        stack.gw_argv += ["--set", f"mqtt.uri=ssl://127.0.0.1:{stack.broker.port}"]
        stack.gw.argv = stack.gw_argv
        stack.broker.start()
        stack.gw.start()
        try:
            wait_for(lambda: "cannot connect to ssl://" in stack.gw.output(), 20,
                     what="the connection error")
            time.sleep(0.5)
            self.assertTrue(stack.gw.alive(), "the gateway stopped")
            self.assertNotIn("connected to ssl://", stack.gw.output())
        except Exception:
            stack.dump_logs()
            raise
        return stack.gw.output()

    def test_name_mismatch_is_named(self):
        self.assertIn("IP address mismatch", self.gateway_log_for("wrongname"))

    def test_unknown_ca_is_named(self):
        self.assertIn("unable to get local issuer certificate", self.gateway_log_for("othersigned"))

    def test_expired_certificate_is_named(self):
        self.assertIn("certificate has expired", self.gateway_log_for("expired"))


if __name__ == "__main__":
    unittest.main()
