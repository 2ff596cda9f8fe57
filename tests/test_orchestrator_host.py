"""Host figures: the pure arithmetic on fixed readings, and the sampler on this machine's psutil."""

import os
import socket

import psutil
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.orchestrator.host import HostSampler, Reading, figures
from tests.support.waiting import wait_for

MEMORY = {"total": 1000, "available": 400, "used": 600, "percent": 60.0}


def reading(at: float, busy: float, total: float, network: dict) -> Reading:
    return Reading(at=at, wall=1_700_000_000.0 + at, cpu_busy=busy, cpu_total=total, cpu_count=2,
                   load=(0.5, 0.25, 0.1), memory=MEMORY,
                   disks={"images": {"path": "/i", "total": 100, "used": 40, "free": 60, "percent": 40.0},
                          "journal": None},
                   network=network)


class FiguresTests(TestCase):
    def test_first_reading_has_no_rates(self):
        """With one reading only, CPU % and network rates are unknown (None), the rest is there."""
        result = figures(None, reading(10, 5, 20, {"eth0": (100, 200)}))
        self.assertIsNone(result["cpu"]["percent"])
        self.assertEqual(result["cpu"]["load"], [0.5, 0.25, 0.1])
        self.assertEqual(result["memory"], MEMORY)
        self.assertEqual(result["network"], {"rx_bytes_per_s": None, "tx_bytes_per_s": None, "interfaces": []})
        # a volume that could not be measured is left out, not shown as zeros
        self.assertEqual([d["volume"] for d in result["disks"]], ["images"])

    def test_cpu_percent_and_rates_are_differences_over_the_interval(self):
        """CPU % is busy time over total time between readings; bytes per second per interface;
        the totals leave the loopback out."""
        before = reading(10, 5, 20, {"eth0": (1000, 5000), "lo": (0, 0)})
        after = reading(12, 8, 24, {"eth0": (3000, 5500), "lo": (9000, 9000)})
        result = figures(before, after)
        self.assertEqual(result["cpu"]["percent"], 75.0)
        self.assertEqual(result["network"]["rx_bytes_per_s"], 1000.0)
        self.assertEqual(result["network"]["tx_bytes_per_s"], 250.0)
        lo = [i for i in result["network"]["interfaces"] if i["name"] == "lo"][0]
        self.assertEqual((lo["rx_bytes_per_s"], lo["tx_bytes"]), (4500.0, 9000))

    def test_a_counter_reset_gives_no_rate_instead_of_a_negative_one(self):
        """An interface re-created between readings starts from 0: no figure, never a negative one."""
        result = figures(reading(10, 5, 20, {"eth0": (1000, 1000)}), reading(12, 6, 22, {"eth0": (10, 2000)}))
        eth0 = result["network"]["interfaces"][0]
        self.assertEqual((eth0["rx_bytes_per_s"], eth0["tx_bytes_per_s"]), (None, 500.0))
        self.assertIsNone(result["network"]["rx_bytes_per_s"])

    def test_an_interface_seen_first_is_left_out_until_its_second_reading(self):
        """A network interface seen for the first time has no rate until its second reading."""
        result = figures(reading(10, 5, 20, {"eth0": (0, 0)}), reading(12, 6, 22, {"eth0": (0, 0), "wlan0": (5, 5)}))
        self.assertEqual([i["name"] for i in result["network"]["interfaces"]], ["eth0"])


class SamplerTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_readings_of_this_host_are_sane(self):
        """Real psutil on this machine: CPU within 0..100, memory and disk sizes as the OS
        reports them, and bytes sent over the loopback show in its counters and rate."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        sampler = HostSampler(reactor, {"images": root, "journal": os.path.join(root, "not", "yet")}, 0.1)
        self.assertEqual((sampler.latest(), sampler.disks()), (None, {}))
        sampler.start()
        self.addCleanup(sampler.stop)
        first = yield wait_for(sampler.latest, "first reading")
        lo_before = {i["name"]: i for i in first["network"]["interfaces"]}.get("lo", {}).get("rx_bytes", 0)
        self._send_over_loopback(2_000_000)
        host = yield wait_for(lambda: (sampler.latest() or {}).get("cpu", {}).get("percent") is not None
                              and sampler.latest(), "second reading")
        self.assertTrue(0.0 <= host["cpu"]["percent"] <= 100.0)
        self.assertEqual(host["cpu"]["count"], psutil.cpu_count())
        self.assertEqual(len(host["cpu"]["load"]), 3)
        self.assertTrue(all(value >= 0 for value in host["cpu"]["load"]))
        memory = host["memory"]
        self.assertEqual(memory["total"], psutil.virtual_memory().total)
        self.assertTrue(0 < memory["used"] < memory["total"])
        self.assertEqual(memory["used"] + memory["available"], memory["total"])
        self.assertEqual(host["interval"], 0.1)
        disks = {d["volume"]: d for d in host["disks"]}
        self.assertEqual(set(disks), {"images", "journal"})  # a missing dir is measured on its parent's volume
        usage = psutil.disk_usage(root)
        self.assertEqual(disks["images"]["total"], usage.total)
        # the disk rule and /metrics read the volumes from the same reading
        self.assertEqual(sampler.disks()["images"]["total"], usage.total)
        self.assertEqual(set(sampler.disks()), {"images", "journal"})
        self.assertTrue(0 < disks["images"]["used"] < disks["images"]["total"])
        self.assertTrue(0 < disks["images"]["free"] < disks["images"]["total"])
        self.assertTrue(all(d["tx_bytes_per_s"] >= 0 and d["rx_bytes_per_s"] >= 0
                            for d in host["network"]["interfaces"] if d["rx_bytes_per_s"] is not None))
        # the loopback carried our 2 MB: its counter grew by at least that and a reading saw a rate
        yield wait_for(lambda: self._lo(sampler)["rx_bytes"] >= lo_before + 2_000_000, "loopback bytes counted")
        yield wait_for(lambda: (self._lo(sampler)["rx_bytes_per_s"] or 0) > 0 or self._send_over_loopback(100_000),
                       "a loopback rate")

    def _lo(self, sampler) -> dict:
        return {i["name"]: i for i in sampler.latest()["network"]["interfaces"]}["lo"]

    def _send_over_loopback(self, size: int) -> None:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        chunk, sent, received = b"x" * 65536, 0, 0
        with server, client, peer:
            while sent < size:
                sent += client.send(chunk[:size - sent])
                while received < sent:  # drained at once: the socket buffers never fill up
                    received += len(peer.recv(65536))

    @defer.inlineCallbacks
    def test_stop_waits_for_a_reading_in_flight(self):
        """Shutdown does not leave a reading running in a thread behind."""
        import threading

        release = threading.Event()
        taken = []

        def slow_read(volumes):
            release.wait(10)
            taken.append(volumes)
            from ccl.orchestrator.host import read_host
            return read_host(volumes)

        sampler = HostSampler(reactor, {}, 60, read=slow_read)
        sampler.start()
        stopped = sampler.stop()
        self.assertFalse(stopped.called)
        release.set()
        yield stopped
        self.assertEqual(taken, [{}])
        self.assertIsNotNone(sampler.latest())
