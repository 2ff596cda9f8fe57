"""TLS on the MES side and under the orchestrator, with real services on loopback:
ccl-mes listening with ssl:, forwarding to a 고기원 that speaks TLS, and the orchestrator
running real services on ssl: listeners and checking their health over https."""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.gokiwon.service import GokiwonSettings
from ccl.adapters.gokiwon.simulator import GokiwonSimulator
from ccl.adapters.storage.localdb import free_port
from ccl.adapters.tls import client_options
from ccl.config import load_config
from ccl.orchestrator.monitor import Orchestrator
from ccl.orchestrator.services import children
from ccl.orchestrator.settings import Settings
from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, MesClient, schedule, speed, start_service
from tests.support.orchestrator import environ, wait_for
from tests.support.tls import make_foreign_ca, make_site, server_options


def _tls_client(port: int, ca, client_protocol):
    """Connect ``client_protocol`` over TLS to 127.0.0.1:``port``, trusting ``ca``."""
    endpoint = endpoints.wrapClientTLS(client_options("127.0.0.1", str(ca)),
                                       endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    return endpoints.connectProtocol(endpoint, client_protocol)


class _Probe(protocol.Protocol):
    def __init__(self):
        self.lost = defer.Deferred()
        self.received = b""

    def dataReceived(self, data):  # noqa: N802
        self.received += data

    def connectionLost(self, reason=protocol.connectionDone):  # noqa: N802
        self.lost.callback([reason])  # in a list: a Failure given to callback() would fire the errback


class MesOverTlsTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_mes_listener_on_ssl_acks_and_stores(self):
        """ccl-mes on an ssl: listener: a TLS client with our CA gets its ACKs and the rows are stored."""
        site = make_site(self)
        dsn = fresh_database(self)
        port = free_port()
        yield start_service(self, dsn, listen=site.endpoint(port))
        client = yield _tls_client(port, site.ca, MesClient())
        self.addCleanup(lambda: client.closed if client.closed.called else
                        (client.transport.loseConnection(), client.closed)[1])
        client.transport.write(schedule(1, "H477707") + speed(2, 118))
        yield client.wait_replies(2)
        self.assertEqual([(r.tc_code, r.acked_sequence_no) for r in client.replies], [("4900", 1), ("4900", 2)])
        yield wait_for(lambda: query(dsn, "SELECT count(*) FROM tc_4000_schedule")[0][0] == 1, what="stored")

    @defer.inlineCallbacks
    def test_plain_client_on_the_tls_mes_port_gets_no_ack(self):
        """Plain TCP on the TLS MES port: the telegram is neither ACKed nor stored; the connection ends."""
        site = make_site(self)
        dsn = fresh_database(self)
        port = free_port()
        yield start_service(self, dsn, listen=site.endpoint(port))
        client = yield endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), MesClient())
        client.transport.write(schedule(1, "H477707"))
        yield client.closed
        self.assertEqual(client.replies, [])
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4000_schedule")[0][0], 0)


class GokiwonOverTlsTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_forwarding_to_a_tls_gokiwon(self):
        """[gokiwon] tls: the channel connections verify 고기원's certificate with our CA and deliver."""
        site = make_site(self)
        sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0)
        ports = yield sim.listen({"schedule": 0, "wpd": 0, "speed": 0}, tls=server_options(site))
        self.addCleanup(sim.shutdown)
        settings = GokiwonSettings(host="127.0.0.1", ports=ports, ack_listen="tcp:0:interface=127.0.0.1",
                                   retry_initial=0.1, retry_max=0.5, poll_interval=3600, tls=True,
                                   ca_file=str(site.ca))
        dsn = fresh_database(self)
        mes = yield start_service(self, dsn, gokiwon=settings)
        port = yield mes.forwarding.ack_listener.listening
        sim.start_acks(("127.0.0.1", port.getHost().port))
        yield wait_for(lambda: all(f.connected for f in mes.forwarding.forwarders.values()), what="connected")
        client = yield endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", int(mes.settings.listen.split(":")[1])), MesClient())
        self.addCleanup(lambda: client.closed if client.closed.called else
                        (client.transport.loseConnection(), client.closed)[1])
        telegram = schedule(1, "H477707")
        client.transport.write(telegram)
        yield wait_for(lambda: any(item.raw == telegram for item in sim.received), what="forwarded over TLS")

    @defer.inlineCallbacks
    def test_client_trusting_another_ca_refuses_that_gokiwon(self):
        """The client options the channels use refuse a 고기원 whose certificate our CA did not sign."""
        site = make_site(self)
        sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0)
        ports = yield sim.listen({"schedule": 0}, tls=server_options(site))
        self.addCleanup(sim.shutdown)
        probe = _Probe()
        try:
            yield _tls_client(ports["schedule"], make_foreign_ca(self), probe)
        except SSL.Error:
            pass  # refused during the handshake, before the connection counted as made
        else:
            [reason] = yield probe.lost  # or right after: the connection ends with the handshake's error
            self.assertTrue(reason.check(SSL.Error), reason)
        self.assertFalse(probe.received)
        self.assertEqual(sim.received, [])


class OrchestratorChecksTlsServicesTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_real_services_on_ssl_listeners_are_healthy(self):
        """ccl-mes (status on ssl:) and ccl-defects (ssl:) as children: healthy through https checks with our CA."""
        site = make_site(self)
        env = environ(self, services="mes-tcp-service, defect-data-receiver", start_timeout="60",
                      health_interval="0.2")
        env.update({
            "CCL_DATABASE_DSN": fresh_database(self),
            "CCL_TLS_CA_FILE": str(site.ca),
            "CCL_MES_LISTEN": site.endpoint(free_port()),
            "CCL_MES_ACK_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_MES_STATUS_LISTEN": site.endpoint(free_port()),
            "CCL_GOKIWON_ENABLED": "false",
            "CCL_DEFECTS_LISTEN": site.endpoint(free_port()),
        })
        config = load_config(env)
        specs = children(config, environ={**os.environ, **env})
        self.assertTrue(all(check.target.startswith("https://") for spec in specs for check in spec.checks
                            if check.kind == "http"))
        monitor = Orchestrator(reactor, specs, Settings.from_config(config))
        monitor.startService()

        @defer.inlineCallbacks
        def stop():
            yield monitor.stopService()
            monitor.close_logs()
        self.addCleanup(stop)
        for name in ("mes-tcp-service", "defect-data-receiver"):
            child = monitor.get(name)
            yield wait_for(lambda: child.state in ("running", "fatal"), f"{name} healthy", timeout=90)
            self.assertEqual(child.state, "running", "\n".join(child.log.tail(30)))
