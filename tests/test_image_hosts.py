"""Two plant servers, one database, two image stores: the UI of one machine serves the images
uploaded to the other by fetching them from that machine's ccl-images (docs/operations.md, "Two
plant servers: images"). Real ccl-images apps and real UIs on loopback ports, real PostgreSQL,
real TLS with our CA."""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path

import psycopg2
from PIL import Image
from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.ingest_tokens import create_token
from ccl.adapters.storage.localdb import free_port
from ccl.adapters.web.ui.pages import images as image_pages
from ccl.domain.ingest.tokens import new_token, token_digest
from tests.support.database import fresh_database, query
from tests.support.ingest import get, image_bytes, pair_parts, post_parts, start_service
from tests.support.tls import make_foreign_ca, make_site, server_options
from tests.support.ui import json_of, start_ui
from tests.test_coil_report import poppler, saved

_VIEWERS = itertools.count(1)
ORIGINAL = image_bytes("JPEG", size=(640, 480), color=(20, 120, 200))
DEFECTS = json.dumps([{"defect_type": "scratch", "confidence_score": 0.97, "defect_position_meter": 12.5}])


class ImageHostTests(TestCase):
    timeout = 60

    def setUp(self):
        # The UI's thumbnail cache is per process and keyed by image id: every test starts empty.
        image_pages._thumbnails._items.clear()
        self.addCleanup(image_pages._thumbnails._items.clear)

    async def two_hosts(self, *, ccl1_allow: str = "127.0.0.1"):
        """ccl-images "ccl1" and "ccl2" over one database, each with its own root, one pair uploaded to each."""
        self.dsn = fresh_database(self)
        self.ccl1 = await start_service(self, "images", dsn=self.dsn, allow=ccl1_allow,
                                        env={"CCL_IMAGES_HOST_NAME": "ccl1"})
        self.ccl2 = await start_service(self, "images", dsn=self.dsn, env={"CCL_IMAGES_HOST_NAME": "ccl2"})
        if ccl1_allow:
            code, _ = await post_parts(self.ccl1.url, pair_parts(coil="C100-01", original=ORIGINAL,
                                                                 defect_data=DEFECTS))
            self.assertEqual(code, 201)
        else:  # nobody by address: the box sends a token
            token = self.token("jetson-top")
            code, _ = await post_parts(self.ccl1.url, pair_parts(coil="C100-01", original=ORIGINAL),
                                       headers={"Authorization": f"Bearer {token}"})
            self.assertEqual(code, 201)
        code, _ = await post_parts(self.ccl2.url, pair_parts(coil="C200-02"))
        self.assertEqual(code, 201)
        rows = query(self.dsn, "SELECT coil_number, kind, id, stored_on, path FROM images ORDER BY id")
        self.ids = {(coil, kind): image_id for coil, kind, image_id, _, _ in rows}
        self.assertEqual({(coil, host) for coil, _, _, host, _ in rows}, {("C100-01", "ccl1"), ("C200-02", "ccl2")})
        self.ccl1_original = Path(self.ccl1.root, next(p for c, k, _, _, p in rows if (c, k) == ("C100-01", "original")))

    def token(self, name: str) -> str:
        token = new_token()
        connection = psycopg2.connect(self.dsn)
        try:
            create_token(connection, name, token_digest(token), actor="test")
        finally:
            connection.close()
        return token

    async def ui_as_ccl2(self, peers: str | None = None, env: dict | None = None):
        """The UI of ccl2: ccl2's image root, ccl1's image service as its peer (unless ``peers``)."""
        ui = await start_ui(self, dsn=self.dsn, env={
            "CCL_IMAGES_ROOT": self.ccl2.root, "CCL_IMAGES_HOST_NAME": "ccl2",
            "CCL_IMAGES_PEERS": peers if peers is not None else f"ccl1={self.ccl1.url}, ccl2={self.ccl2.url}",
            **(env or {})})
        return ui, ui.add_user(f"viewer{next(_VIEWERS)}", "viewer")

    async def test_ui_of_one_host_serves_the_image_the_other_host_received(self):
        """An image uploaded to ccl1 is served by ccl2's UI byte for byte, with a decodable
        thumbnail made from the fetched file; ccl2's own image is served from its store."""
        await self.two_hosts()
        ui, viewer = await self.ui_as_ccl2()
        remote = self.ids[("C100-01", "original")]
        self.assertFalse(Path(self.ccl2.root, "original").joinpath(self.ccl1_original.name).exists())
        response, body = await ui.get(f"/images/{remote}", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, ORIGINAL)
        self.assertEqual(body, self.ccl1_original.read_bytes())
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"image/jpeg"])

        response, thumb = await ui.get(f"/images/{remote}/thumb", viewer)
        self.assertEqual(response.code, 200)
        with Image.open(io.BytesIO(thumb)) as image:
            self.assertEqual((image.format, image.size), ("JPEG", (320, 240)))

        labeled = self.ids[("C100-01", "labeled")]
        response, body = await ui.get(f"/images/{labeled}", viewer)
        self.assertEqual((response.code, response.headers.getRawHeaders(b"content-type")), (200, [b"image/png"]))
        with Image.open(io.BytesIO(body)) as image:
            self.assertEqual(image.format, "PNG")

        local = self.ids[("C200-02", "original")]
        response, body = await ui.get(f"/images/{local}", viewer)
        self.assertEqual(response.code, 200)
        response, info = await ui.get(f"/api/images/{remote}", viewer)
        self.assertEqual(json_of(info)["stored_on"], "ccl1")
        code, listed, _, _ = await get(self.ccl2.url, "/list/original")
        self.assertEqual({row["coil_number"]: row["stored_on"] for row in listed["data"]["images"]},
                         {"C100-01": "ccl1", "C200-02": "ccl2"})

    async def test_peer_down_is_a_clear_502_and_local_images_still_served(self):
        """ccl1's image service unreachable: its images answer 502 naming the host, the thumbnail
        too; ccl2's own images and thumbnails are served as ever."""
        await self.two_hosts()
        ui, viewer = await self.ui_as_ccl2(peers=f"ccl1=http://127.0.0.1:{free_port()}")
        remote = self.ids[("C100-01", "original")]
        for suffix in ("", "/thumb"):
            response, body = await ui.get(f"/images/{remote}{suffix}", viewer)
            self.assertEqual(response.code, 502)
            error = json_of(body)
            self.assertEqual(error["error"], "image host unavailable")
            self.assertEqual((error["details"]["id"], error["details"]["stored_on"]), (remote, "ccl1"))
            self.assertIn("ConnectionRefused", error["details"]["reason"])
        local = self.ids[("C200-02", "original")]
        for suffix in ("", "/thumb"):
            response, _ = await ui.get(f"/images/{local}{suffix}", viewer)
            self.assertEqual(response.code, 200)

    async def test_image_of_an_unknown_host_or_missing_on_its_host_is_a_404_with_reason(self):
        """A row naming a host without a peers entry, or a file the holder no longer has: 404 with
        the reason; a row of this host whose file is gone: 404 without asking anyone."""
        await self.two_hosts()
        ui, viewer = await self.ui_as_ccl2()
        remote, labeled = self.ids[("C100-01", "original")], self.ids[("C100-01", "labeled")]
        query(self.dsn, "UPDATE images SET stored_on = 'ccl9' WHERE id = %s", (labeled,))
        response, body = await ui.get(f"/images/{labeled}", viewer)
        self.assertEqual(response.code, 404)
        self.assertEqual(json_of(body)["details"]["reason"], "no [images] peers entry names this host")

        self.ccl1_original.unlink()
        response, body = await ui.get(f"/images/{remote}", viewer)
        self.assertEqual(response.code, 404)
        self.assertEqual(json_of(body)["error"], "image file not available")
        self.assertEqual(json_of(body)["details"]["reason"], "the holding host has no such file")

        local = self.ids[("C200-02", "original")]
        query(self.dsn, "UPDATE images SET path = 'original/gone.jpg' WHERE id = %s", (local,))
        response, body = await ui.get(f"/images/{local}", viewer)
        self.assertEqual(response.code, 404)
        self.assertNotIn("reason", json_of(body)["details"])

    async def test_https_peer_verified_with_our_ca_and_refused_with_another(self):
        """ccl1's image service on TLS: the UI trusting [tls] ca_file (our CA) fetches the image;
        a UI trusting another CA refuses the certificate (502), nothing served."""
        await self.two_hosts()
        site = make_site(self)
        port = reactor.listenSSL(0, self.ccl1.site, server_options(site), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        peers = f"ccl1=https://127.0.0.1:{port.getHost().port}"
        remote = self.ids[("C100-01", "original")]

        ui, viewer = await self.ui_as_ccl2(peers=peers, env={"CCL_TLS_CA_FILE": str(site.ca)})
        response, body = await ui.get(f"/images/{remote}", viewer)
        self.assertEqual((response.code, body), (200, ORIGINAL))

        other, viewer = await self.ui_as_ccl2(peers=peers, env={"CCL_TLS_CA_FILE": str(make_foreign_ca(self))})
        response, body = await other.get(f"/images/{remote}", viewer)
        self.assertEqual(response.code, 502)
        self.assertIn("certificate verify failed", json_of(body)["details"]["reason"])

    async def test_peer_admitting_only_tokens_is_asked_with_the_peer_token(self):
        """ccl1 admits no address, only bearer tokens: the UI with [images] peer_token_file gets the
        image; without it the peer's refusal is a 502 that says what to configure."""
        await self.two_hosts(ccl1_allow="")
        remote = self.ids[("C100-01", "original")]
        ui, viewer = await self.ui_as_ccl2()
        response, body = await ui.get(f"/images/{remote}", viewer)
        self.assertEqual(response.code, 502)
        self.assertIn("refused us (401)", json_of(body)["details"]["reason"])

        token_file = Path(self.mktemp())
        token_file.write_text(self.token("ui-peers") + "\n")
        ui, viewer = await self.ui_as_ccl2(env={"CCL_IMAGES_PEER_TOKEN_FILE": str(token_file)})
        response, body = await ui.get(f"/images/{remote}", viewer)
        self.assertEqual((response.code, body), (200, ORIGINAL))

    async def test_silent_peer_times_out_while_other_images_are_served(self):
        """A peer that accepts the connection and never answers: the fetch ends after
        [images] peer_timeout_seconds with a 502; meanwhile the UI serves a local image (the
        reactor is not held)."""
        await self.two_hosts()
        silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        ui, viewer = await self.ui_as_ccl2(peers=f"ccl1=http://127.0.0.1:{silent.getHost().port}",
                                           env={"CCL_IMAGES_PEER_TIMEOUT_SECONDS": "1"})
        remote, local = self.ids[("C100-01", "original")], self.ids[("C200-02", "original")]
        pending = defer.ensureDeferred(ui.get(f"/images/{remote}", viewer))
        response, _ = await ui.get(f"/images/{local}", viewer)
        self.assertEqual(response.code, 200)
        self.assertFalse(pending.called)  # still waiting for the silent peer
        response, body = await pending
        self.assertEqual(response.code, 502)
        self.assertEqual(json_of(body)["details"]["reason"], "no answer within 1 s")

    async def test_file_larger_than_the_upload_limit_is_not_taken_from_a_peer(self):
        """The fetch reads at most [images] max_file_mb: a bigger file from the peer is a 502, not a
        buffer without bound."""
        await self.two_hosts()
        noisy = Image.frombytes("RGB", (800, 600), random.Random(7).randbytes(800 * 600 * 3))
        out = io.BytesIO()
        noisy.save(out, "PNG")
        self.assertGreater(len(out.getvalue()), 1024 * 1024)
        code, _ = await post_parts(self.ccl1.url, pair_parts(coil="C300-03", labeled=out.getvalue()))
        self.assertEqual(code, 201)
        (big,) = query(self.dsn, "SELECT id FROM images WHERE coil_number = 'C300-03' AND kind = 'labeled'")[0]
        ui, viewer = await self.ui_as_ccl2(env={"CCL_IMAGES_MAX_FILE_MB": "1"})
        response, body = await ui.get(f"/images/{big}", viewer)
        self.assertEqual(response.code, 502)
        self.assertEqual(json_of(body)["details"]["reason"], f"the file is larger than {1024 * 1024} bytes")
        response, _ = await ui.get(f"/images/{self.ids[('C100-01', 'original')]}", viewer)
        self.assertEqual(response.code, 200)

    async def test_coil_report_draws_the_image_held_by_the_other_host(self):
        """The coil report PDF made on ccl2 shows the worst defect's image that only ccl1's store
        holds (fetched from ccl1); with ccl1 down the report is still made, with "no image"."""
        await self.two_hosts()
        for peers, drawn in ((None, 1), (f"ccl1=http://127.0.0.1:{free_port()}", 0)):
            ui, viewer = await self.ui_as_ccl2(peers=peers)
            response, body = await ui.get("/coils/C100-01/report.pdf", viewer)
            self.assertEqual(response.code, 200)
            images = poppler("pdfimages", "-list", "-f", "3", "-l", "3", str(saved(self, body)))
            self.assertEqual(len(images.strip().splitlines()) - 2, drawn, peers)
