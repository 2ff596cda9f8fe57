"""TLS on our links: ssl: listeners, the clients that verify them with our CA, ccl tls init.

Real loopback sockets and real services: a client trusting our CA gets in, one trusting only
another CA fails the handshake, a plain-TCP client gets no HTTP answer on a TLS port, and
no client certificate is asked for (none of the clients here presents one).
"""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import os
import stat
import sys
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import attrs
import treq
from cryptography import x509
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer, endpoints, protocol, reactor, utils
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived, readBody

from ccl.adapters.tls import https_policy
from ccl.adapters.web.ui.orchestrator import OrchestratorClient, OrchestratorUnavailable
from ccl.adapters.web.ui.site import site as ui_site
from ccl.cli import main as ccl_main
from ccl.config import ConfigError, load_config
from ccl.orchestrator.health import CheckFailed, http_get, run_check
from ccl.orchestrator.services import SERVICES, Check, Listener, listener, service_child
from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.ingest import start_service
from tests.support.tls import make_foreign_ca, make_site
from tests.support.ui import set_cookies, start_ui
from tests.test_ui_framework import submit_login

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str, ca_file) -> defer.Deferred:
    """GET ``url`` with a fresh connection, verifying an https URL against ``ca_file``."""
    agent = Agent(reactor, contextFactory=https_policy(str(ca_file)), pool=HTTPConnectionPool(reactor, persistent=False))
    return agent.request(b"GET", url.encode("ascii"))


class _Collect(protocol.Protocol):
    """Sends ``request`` once connected, keeps whatever comes back until the connection ends."""

    def __init__(self, request: bytes):
        self.request = request
        self.received = b""
        self.done = defer.Deferred()

    def connectionMade(self):  # noqa: N802
        self.transport.write(self.request)

    def dataReceived(self, data):  # noqa: N802
        self.received += data

    def connectionLost(self, reason=protocol.connectionDone):  # noqa: N802
        self.done.callback(self.received)


class ListenerAddressTests(SynchronousTestCase):
    """Where our clients reach a listen setting, for tcp: and ssl: endpoint strings."""

    def listener_of(self, text: str) -> Listener:
        return listener(load_config({"CCL_DEFECTS_LISTEN": text}), "defects", "listen")

    def test_ssl_endpoints_are_reached_over_https(self):
        """ssl: listeners give https URLs, positional or port=, with the interface as host."""
        self.assertEqual(self.listener_of("ssl:8082:privateKey=/k.key:certKey=/c.pem").url("/health"),
                         "https://127.0.0.1:8082/health")
        self.assertEqual(self.listener_of("ssl:port=8082:privateKey=/k.key:certKey=/c.pem:extraCertChain=/ch.pem"
                                          ":interface=10.20.0.5").url(), "https://10.20.0.5:8082")

    def test_escaped_colons_and_ipv6(self):
        """Escaped colons in paths do not split fields; an IPv6 interface is bracketed in the URL."""
        found = self.listener_of(r"ssl:8082:privateKey=/a\:b.key:certKey=/c.pem:interface=\:\:1")
        self.assertEqual(found, Listener("::1", 8082, tls=True))
        self.assertEqual(found.url(), "https://[::1]:8082")

    def test_tcp_stays_http(self):
        """tcp: listeners stay plain http, every interface reached on loopback."""
        self.assertEqual(self.listener_of("tcp:8082").url(), "http://127.0.0.1:8082")
        self.assertEqual(self.listener_of("tcp:port=8082:interface=0.0.0.0").address(), "127.0.0.1:8082")

    def test_unix_socket_refused_with_a_message(self):
        """A unix: listener has no address to check: a configuration error naming the setting."""
        config = load_config({"CCL_DEFECTS_LISTEN": "unix:/tmp/ccl.sock"})
        with self.assertRaises(ConfigError) as caught:
            listener(config, "defects", "listen")
        self.assertIn(config.where("defects", "listen"), str(caught.exception))
        self.assertIn("unix:", str(caught.exception))

    def test_health_checks_follow_the_listen_setting(self):
        """The orchestrator checks a TLS service over https with [tls] ca_file, a tcp one over http."""
        site = make_site(self)
        config = load_config({"CCL_DEFECTS_LISTEN": site.endpoint(8082), "CCL_TLS_CA_FILE": str(site.ca),
                              "CCL_IMAGES_LISTEN": "tcp:8081"})
        by_id = {service.id: service for service in SERVICES}
        defects = service_child(config, by_id["defect-data-receiver"], {})
        self.assertEqual(defects.checks, (Check("http", "https://127.0.0.1:8082/health", ca_file=str(site.ca)),))
        self.assertEqual((defects.metrics_url, defects.ca_file), ("https://127.0.0.1:8082/metrics", str(site.ca)))
        images = service_child(config, by_id["image-receiver"], {})
        self.assertEqual(images.checks[0].target, "http://127.0.0.1:8081/health")

    def test_a_ca_file_that_is_not_a_certificate_is_refused(self):
        """[tls] ca_file must hold a PEM certificate: a configuration error at start-up, not in each client."""
        path = Path(self.mktemp())
        path.write_text("not a certificate\n")
        config = load_config({"CCL_DEFECTS_LISTEN": "tcp:8082", "CCL_TLS_CA_FILE": str(path)})
        with self.assertRaises(ConfigError) as caught:
            service_child(config, SERVICES[2], {})
        self.assertIn(config.where("tls", "ca_file"), str(caught.exception))
        self.assertIn("no PEM certificate", str(caught.exception))


class TlsInitTests(SynchronousTestCase):
    """ccl tls init: the CA once, server certificates signed by it, keys 0600, settings printed."""

    def run_init(self, site: Path, hosts: str) -> str:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = ccl_main(["tls", "init", "--site", str(site), "--hosts", hosts])
        self.assertEqual(code, 0)
        return output.getvalue()

    def test_certificate_for_the_hosts_signed_by_the_ca(self):
        """SANs hold the DNS names and IP addresses given plus 127.0.0.1 and localhost; keys are 0600."""
        site = Path(self.mktemp()).absolute()
        self.run_init(site, "plant1.local,10.20.0.5")
        ca = x509.load_pem_x509_certificate((site / "ca.pem").read_bytes())
        cert = x509.load_pem_x509_certificate((site / "server.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(sorted(names.get_values_for_type(x509.DNSName)), ["localhost", "plant1.local"])
        self.assertEqual(sorted(str(a) for a in names.get_values_for_type(x509.IPAddress)), ["10.20.0.5", "127.0.0.1"])
        self.assertTrue(ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertFalse(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        for key in ("ca.key", "server.key"):
            self.assertEqual(stat.S_IMODE(os.stat(site / key).st_mode), 0o600, key)

    def test_second_run_keeps_the_ca_and_issues_another_certificate(self):
        """The CA is made once: a second machine's certificate is signed by the same CA."""
        site = Path(self.mktemp()).absolute()
        self.run_init(site, "plant1.local")
        ca_before = (site / "ca.pem").read_bytes()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            self.assertEqual(ccl_main(["tls", "init", "--site", str(site), "--hosts", "plant2.local",
                                       "--name", "plant2"]), 0)
        self.assertEqual((site / "ca.pem").read_bytes(), ca_before)
        ca = x509.load_pem_x509_certificate(ca_before)
        x509.load_pem_x509_certificate((site / "plant2.pem").read_bytes()).verify_directly_issued_by(ca)
        self.assertTrue((site / "server.pem").exists())

    def test_bad_host_name_is_a_message(self):
        """A host that is neither a name nor an address: exit 1 with a message, no certificate."""
        site = Path(self.mktemp()).absolute()
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(ccl_main(["tls", "init", "--site", str(site), "--hosts", "bad host"]), 1)
        self.assertIn("'bad host'", errors.getvalue())
        self.assertFalse((site / "server.pem").exists())

    def test_printed_settings_load_and_make_the_listeners_tls(self):
        """The printed INI block is a valid configuration: the listeners become https, the database verify-full."""
        site = Path(self.mktemp()).absolute()
        printed = self.run_init(site, "plant1.local")
        ini = printed[printed.index("[tls]"):]
        configparser.ConfigParser(interpolation=None).read_string(ini)  # well-formed
        path = site / "ccl.ini"
        path.write_text(ini)
        config = load_config({"CCL_CONFIG": str(path)})
        for section, port in (("images", 8081), ("defects", 8082), ("ui", 3000), ("orchestrator", 9000)):
            self.assertEqual(listener(config, section, "listen").url(), f"https://127.0.0.1:{port}")
        self.assertEqual(config.get("database", "sslmode"), "verify-full")


class ServiceOverTlsTests(TestCase):
    """A real ingest service (ccl-defects) on an ssl: endpoint, reached by our clients."""

    timeout = 60

    @defer.inlineCallbacks
    def start_defects_over_tls(self):
        site = make_site(self)
        running = yield start_service(self, "defects")
        port = yield endpoints.serverFromString(reactor, site.endpoint()).listen(running.site)
        self.addCleanup(port.stopListening)
        return site, f"https://127.0.0.1:{port.getHost().port}", port.getHost().port

    @defer.inlineCallbacks
    def test_client_trusting_our_ca_is_served_without_a_client_certificate(self):
        """A client with our CA (and no certificate of its own) gets the service's /health over https."""
        site, url, _ = yield self.start_defects_over_tls()
        response = yield _get(url + "/health", site.ca)
        body = yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertIn(b'"status"', body)

    @defer.inlineCallbacks
    def test_a_bundle_of_several_cas_trusts_each(self):
        """A CA file holding another CA first and ours second: our certificate is trusted."""
        site, url, _ = yield self.start_defects_over_tls()
        bundle = Path(self.mktemp())
        bundle.write_bytes(make_foreign_ca(self).read_bytes() + site.ca.read_bytes())
        response = yield _get(url + "/health", bundle)
        yield readBody(response)
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def test_client_trusting_another_ca_fails_the_handshake(self):
        """A client that trusts only another CA refuses our certificate: no response at all."""
        _, url, _ = yield self.start_defects_over_tls()
        failure = yield self.assertFailure(_get(url + "/health", make_foreign_ca(self)), ResponseNeverReceived)
        self.assertTrue(any(reason.check(SSL.Error) for reason in failure.reasons), failure.reasons)

    @defer.inlineCallbacks
    def test_wrong_host_name_fails_the_handshake(self):
        """Our CA but a certificate for other names: the client refuses it for 127.0.0.1."""
        site = make_site(self, hosts=("plant9.local",))
        running = yield start_service(self, "defects")
        port = yield endpoints.serverFromString(reactor, site.endpoint()).listen(running.site)
        self.addCleanup(port.stopListening)
        failure = yield self.assertFailure(_get(f"https://127.0.0.1:{port.getHost().port}/health", site.ca),
                                           ResponseNeverReceived)
        self.assertTrue(any(reason.check(VerificationError) for reason in failure.reasons), failure.reasons)

    @defer.inlineCallbacks
    def test_plain_tcp_client_gets_no_http_answer(self):
        """Plain HTTP on the TLS port: the connection ends without any HTTP response."""
        _, _, port = yield self.start_defects_over_tls()
        collect = _Collect(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        yield endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
            protocol.Factory.forProtocol(lambda: collect))
        received = yield collect.done
        self.assertNotIn(b"HTTP/", received)
        self.assertNotIn(b"status", received)

    @defer.inlineCallbacks
    def test_orchestrator_health_check_and_scrape_over_tls(self):
        """The orchestrator's own check passes with our CA (with the service's view) and fails with another."""
        site, url, _ = yield self.start_defects_over_tls()
        reported = yield run_check(reactor, Check("http", url + "/health", ca_file=str(site.ca)), 5)
        self.assertIn("status", reported)
        code, body = yield http_get(reactor, url + "/metrics", 5, str(site.ca))
        self.assertEqual(code, 200, body)
        foreign = Check("http", url + "/health", ca_file=str(make_foreign_ca(self)))
        failed = yield self.assertFailure(run_check(reactor, foreign, 5), CheckFailed)
        self.assertIn("GET " + url + "/health", str(failed))


class OrchestratorApiOverTlsTests(TestCase):
    """The orchestrator API on an ssl: endpoint, as the UI and ccl ctl reach it."""

    timeout = 60

    @defer.inlineCallbacks
    def test_ui_client_verifies_the_orchestrator(self):
        """The UI's client reads /status over https with our CA and calls it unreachable with another CA."""
        site = make_site(self)
        fake = FakeOrchestrator(token="secret")
        url = yield fake.start_tls(self, site.endpoint())
        token = Path(self.mktemp())
        token.write_text("secret\n")
        client = OrchestratorClient(reactor, url, token, ca_file=str(site.ca))
        self.addCleanup(client.close)
        services = yield defer.Deferred.fromCoroutine(client.services())
        self.assertIn("mes-tcp-service", [s["service"] for s in services])
        result = yield defer.Deferred.fromCoroutine(client.action("restart", "ui-service", "admin"))
        self.assertEqual(result["result"], "ok")
        self.assertEqual(fake.calls[-1]["authorization"], "Bearer secret")
        stranger = OrchestratorClient(reactor, url, token, ca_file=str(make_foreign_ca(self)))
        self.addCleanup(stranger.close)
        yield self.assertFailure(defer.Deferred.fromCoroutine(stranger.services()), OrchestratorUnavailable)
        self.assertEqual(len(fake.calls), 2)

    @defer.inlineCallbacks
    def test_ccl_ctl_follows_an_ssl_listen_setting(self):
        """ccl ctl status talks https to an ssl: [orchestrator] listen with [tls] ca_file, and refuses another CA."""
        site = make_site(self)
        fake = FakeOrchestrator(token="secret")
        url = yield fake.start_tls(self, site.endpoint())
        port = int(url.rsplit(":", 1)[1])
        env = {key: value for key, value in os.environ.items() if not key.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_PATHS_VAR=self.mktemp(), CCL_TLS_CA_FILE=str(site.ca),
                   CCL_ORCHESTRATOR_LISTEN=site.endpoint(port), CCL_ORCHESTRATOR_TOKEN="secret")
        out, err, code = yield utils.getProcessOutputAndValue(sys.executable, ["-m", "ccl", "ctl", "status"],
                                                              env=env, path=str(ROOT))
        self.assertEqual(code, 0, err)
        self.assertIn(b"mes-tcp-service", out)
        env["CCL_TLS_CA_FILE"] = str(make_foreign_ca(self))
        out, err, code = yield utils.getProcessOutputAndValue(sys.executable, ["-m", "ccl", "ctl", "status"],
                                                              env=env, path=str(ROOT))
        self.assertEqual(code, 3, out)
        self.assertIn(b"CERTIFICATE_VERIFY_FAILED", err)
        self.assertIn(f"https://127.0.0.1:{port}".encode(), err)


class UiOverTlsTests(TestCase):
    """The web UI on an ssl: endpoint: served to a browser trusting our CA, with a Secure session cookie."""

    timeout = 60

    @defer.inlineCallbacks
    def test_login_over_https_sets_a_secure_cookie(self):
        """secure_cookie = auto: a login over TLS gets a Secure cookie; the pages answer over https."""
        site = make_site(self)
        ui = yield defer.Deferred.fromCoroutine(start_ui(self))
        port = yield endpoints.serverFromString(reactor, site.endpoint()).listen(ui_site(ui.ui))
        self.addCleanup(port.stopListening)
        browser = treq.client.HTTPClient(Agent(reactor, contextFactory=https_policy(str(site.ca)),
                                               pool=HTTPConnectionPool(reactor, persistent=False)),
                                         cookiejar=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
        secure = attrs.evolve(ui, base=f"https://127.0.0.1:{port.getHost().port}", http=browser)
        user = secure.add_user("kim", "viewer", session=False)
        response, _ = yield defer.Deferred.fromCoroutine(submit_login(secure, "kim", user.password))
        self.assertEqual(response.code, 303)
        cookie = set_cookies(response)["ccl_session"]
        self.assertTrue(cookie["secure"])
        response, body = yield defer.Deferred.fromCoroutine(
            secure.get("/api/whoami", cookies={"ccl_session": cookie["value"]}))
        self.assertEqual((response.code, json.loads(body)["username"]), (200, "kim"))
