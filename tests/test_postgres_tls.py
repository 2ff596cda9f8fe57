"""PostgreSQL over TLS with sslmode=verify-full: a throw-away local cluster with ssl=on and our
certificate (``ccl localdb setup`` with [database] local_ssl_cert/key), reached as the services
reach it (``resolve_dsn``), and refused with a wrong host name, a foreign CA or no TLS."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn
from twisted.trial.unittest import SynchronousTestCase

from ccl.adapters.storage.localdb import free_port, local_cluster, resolve_dsn, setup_local_database, with_tls
from ccl.config import ConfigError, load_config
from tests.support.tls import make_foreign_ca, make_site


def _uses_tls(dsn: str) -> bool:
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        connection.close()


class LocalClusterVerifyFullTests(SynchronousTestCase):
    def setUp(self):
        self.base = Path(tempfile.mkdtemp(prefix="ccl-pg-tls-"))
        os.chmod(self.base, 0o755)  # the postgres user (when we are root) must reach its data directory
        self.addCleanup(shutil.rmtree, self.base, True)
        # The certificate names only 127.0.0.1: "localhost" is a wrong host name for it.
        site = make_site(_Temp(self.base), hosts=("127.0.0.1",))
        self.ca = site.ca
        self.environ = {
            "CCL_PATHS_VAR": str(self.base / "var"), "CCL_DATABASE_LOCAL_PORT": str(free_port()),
            "CCL_DATABASE_LOCAL_SSL_CERT": str(site.server.cert), "CCL_DATABASE_LOCAL_SSL_KEY": str(site.server.key),
            "CCL_DATABASE_SSLMODE": "verify-full", "CCL_TLS_CA_FILE": str(site.ca)}
        self.config = load_config(self.environ)
        self.addCleanup(local_cluster(self.config).destroy)
        self.dsn = setup_local_database(self.config)

    def test_services_connect_with_verify_full_over_tls(self):
        """What every service connects with: verify-full against our CA, and the session is encrypted."""
        dsn = resolve_dsn(self.config)
        options = parse_dsn(dsn)
        self.assertEqual((options["sslmode"], options["sslrootcert"]), ("verify-full", str(self.ca)))
        self.assertEqual(options["host"], "127.0.0.1")
        self.assertTrue(_uses_tls(dsn))
        self.assertEqual(self.dsn, dsn)

    def test_wrong_host_name_is_refused(self):
        """The same server by a name its certificate does not hold: verify-full refuses it."""
        dsn = make_dsn(resolve_dsn(self.config), host="localhost")
        with self.assertRaises(psycopg2.OperationalError) as caught:
            psycopg2.connect(dsn)
        self.assertIn("does not match host name", str(caught.exception))

    def test_foreign_ca_is_refused(self):
        """A client trusting only another CA refuses the server's certificate."""
        dsn = make_dsn(resolve_dsn(self.config), sslrootcert=str(make_foreign_ca(_Temp(self.base))))
        with self.assertRaises(psycopg2.OperationalError) as caught:
            psycopg2.connect(dsn)
        self.assertIn("certificate verify failed", str(caught.exception))

    def test_plain_connection_is_refused_by_the_server(self):
        """Without TLS the local cluster lets nobody in over TCP (pg_hba: hostssl only)."""
        dsn = make_dsn(resolve_dsn(self.config), sslmode="disable")
        with self.assertRaises(psycopg2.OperationalError) as caught:
            psycopg2.connect(dsn)
        self.assertIn("no encryption", str(caught.exception))

    def test_switching_tls_off_again_lets_plain_clients_in(self):
        """Setup without the TLS settings gives the cluster back its plain host lines (no lock-out)."""
        plain = load_config({key: value for key, value in self.environ.items()
                             if key not in ("CCL_DATABASE_LOCAL_SSL_CERT", "CCL_DATABASE_LOCAL_SSL_KEY",
                                            "CCL_DATABASE_SSLMODE")})
        dsn = setup_local_database(plain)
        self.assertNotIn("sslmode", parse_dsn(dsn))
        self.assertFalse(_uses_tls(make_dsn(dsn, sslmode="disable")))

    def test_orchestrator_runs_the_cluster_with_ssl(self):
        """The orchestrator's foreground postgres command keeps ssl on."""
        argv = local_cluster(self.config).server_argv()
        self.assertIn("ssl=on", argv)


class WithTlsTests(SynchronousTestCase):
    """[database] sslmode / sslrootcert added to a configured DSN (remote database)."""

    def test_remote_dsn_gets_sslmode_and_root_cert(self):
        """Key=value and URI DSNs alike; sslrootcert defaults to [tls] ca_file, [database] sslrootcert wins."""
        ca = Path(self.mktemp())
        config = load_config({"CCL_DATABASE_SSLMODE": "verify-full", "CCL_TLS_CA_FILE": str(ca)})
        self.assertEqual(parse_dsn(with_tls(config, "host=db.plant dbname=ccl user=ccl")),
                         {"host": "db.plant", "dbname": "ccl", "user": "ccl", "sslmode": "verify-full",
                          "sslrootcert": str(ca.absolute())})
        uri = with_tls(config, "postgresql://ccl@db.plant/ccl")
        self.assertEqual(parse_dsn(uri)["sslmode"], "verify-full")
        config = load_config({"CCL_DATABASE_SSLMODE": "verify-full", "CCL_TLS_CA_FILE": str(ca),
                              "CCL_DATABASE_SSLROOTCERT": "/etc/ccl/db-ca.pem",
                              "CCL_DATABASE_DSN": "host=db.plant dbname=ccl"})
        self.assertEqual(parse_dsn(resolve_dsn(config))["sslrootcert"], "/etc/ccl/db-ca.pem")

    def test_no_sslmode_leaves_the_dsn_alone(self):
        """The default: the DSN as written."""
        self.assertEqual(with_tls(load_config({}), "host=db.plant dbname=ccl"), "host=db.plant dbname=ccl")

    def test_verify_without_a_ca_and_unknown_modes_are_refused(self):
        """verify-full without any CA file, or a mode libpq does not know: a configuration error."""
        with self.assertRaises(ConfigError):
            with_tls(load_config({"CCL_DATABASE_SSLMODE": "verify-full"}), "host=db.plant")
        with self.assertRaises(ConfigError):
            with_tls(load_config({"CCL_DATABASE_SSLMODE": "sometimes"}), "host=db.plant")


class _Temp:
    """Enough of a test case for make_site: fresh directories below ``base``."""

    def __init__(self, base: Path):
        self.base = base

    def mktemp(self) -> str:
        return tempfile.mkdtemp(dir=self.base)
