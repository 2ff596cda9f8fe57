"""Who gets in: the allow-list, bearer tokens made by ``ccl ingest-token``, and nobody by default."""

import contextlib
import hashlib
import io

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.cli import main
from tests.support.database import fresh_database, query
from tests.support.ingest import get, pair_parts, post_json, post_parts, start_service


def ccl(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


class TokenCommandTests(TestCase):
    def test_create_list_revoke_audited_and_stored_hashed(self):
        """ingest-token create stores only a SHA-256, list hides the secret, revoke works, each step audited."""
        dsn = fresh_database(self)
        code, out, _ = ccl("ingest-token", "--dsn", dsn, "create", "jetson-top")
        self.assertEqual(code, 0)
        token = out.strip().splitlines()[-1]
        stored = query(dsn, "SELECT name, token_hash FROM ingest_tokens")
        self.assertEqual(stored[0][0], "jetson-top")
        self.assertEqual(bytes(stored[0][1]), hashlib.sha256(token.encode()).digest())
        self.assertNotIn(token.encode(), bytes(stored[0][1]))
        code, out, err = ccl("ingest-token", "--dsn", dsn, "create", "jetson-top")
        self.assertEqual(code, 1)
        self.assertIn("exists", err)
        code, out, _ = ccl("ingest-token", "--dsn", dsn, "list")
        self.assertIn("jetson-top", out)
        self.assertNotIn(token, out)
        self.assertEqual(ccl("ingest-token", "--dsn", dsn, "revoke", "jetson-top")[0], 0)
        self.assertEqual(ccl("ingest-token", "--dsn", dsn, "revoke", "jetson-top")[0], 1)
        self.assertEqual(ccl("ingest-token", "--dsn", dsn, "create", "bad name")[0], 2)
        actions = query(dsn, "SELECT action, target, result FROM audit_logs ORDER BY id")
        self.assertEqual(actions, [("ingest_token.create", "jetson-top", "ok"), ("ingest_token.create", "jetson-top", "exists"),
                                   ("ingest_token.revoke", "jetson-top", "ok"), ("ingest_token.revoke", "jetson-top", "not_found")])


class GateTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.dsn = fresh_database(self)
        code, out, _ = ccl("ingest-token", "--dsn", self.dsn, "create", "jetson-1")
        self.token = out.strip().splitlines()[-1]
        # 127.0.0.1 is not on this allow-list: only a token gets in.
        self.images = yield start_service(self, "images", allow="10.99.0.0/16", dsn=self.dsn)
        self.defects = yield start_service(self, "defects", allow="10.99.0.0/16", dsn=self.dsn)

    def written(self):
        return (query(self.dsn, "SELECT count(*) FROM images")[0][0],
                query(self.dsn, "SELECT count(*) FROM defect_detections")[0][0], self.images.files())

    @defer.inlineCallbacks
    def test_no_token(self):
        """Without a token, uploads, defects and /stats are refused with 401 and nothing is written."""
        code, body = yield post_parts(self.images.url, pair_parts())
        self.assertEqual((code, body["error"]), (401, "authentication required"))
        code, body = yield post_json(self.defects.url, "/defect/single", {"coil_number": "C", "defect_type": "d",
                                                                          "confidence_score": 0.5})
        self.assertEqual(code, 401)
        code, body, _, _ = yield get(self.defects.url, "/stats")
        self.assertEqual(code, 401)
        self.assertEqual(self.written(), (0, 0, []))

    @defer.inlineCallbacks
    def test_wrong_token(self):
        """A wrong token is refused with 401, nothing is written, and the next good request is served."""
        headers = {"Authorization": "Bearer ccl_not-the-token"}
        code, body = yield post_parts(self.images.url, pair_parts(), headers=headers)
        self.assertEqual((code, body["error"]), (401, "invalid token"))
        code, body = yield post_json(self.defects.url, "/defect/batch", {"coil_number": "C", "defects": []}, headers=headers)
        self.assertEqual(code, 401)
        self.assertEqual(self.written(), (0, 0, []))
        # The service serves the next (good) request.
        code, _ = yield post_parts(self.images.url, pair_parts(), headers={"Authorization": f"Bearer {self.token}"})
        self.assertEqual(code, 201)

    @defer.inlineCallbacks
    def test_valid_token_gets_in_and_revoked_token_not(self):
        """A valid token gets in and its last use is recorded; once revoked it is refused."""
        headers = {"Authorization": f"Bearer {self.token}"}
        code, body = yield post_parts(self.images.url, pair_parts(), headers=headers)
        self.assertEqual(code, 201, body)
        code, body = yield post_json(self.defects.url, "/defect/single",
                                     {"coil_number": "C", "defect_type": "d", "confidence_score": 0.5}, headers=headers)
        self.assertEqual(code, 201, body)
        self.assertIsNotNone(query(self.dsn, "SELECT last_used_at FROM ingest_tokens")[0][0])
        ccl("ingest-token", "--dsn", self.dsn, "revoke", "jetson-1")
        self.defects.app.gate._cache.clear()  # the cache would refuse it within 10 s anyway
        code, body = yield post_json(self.defects.url, "/defect/single",
                                     {"coil_number": "C", "defect_type": "d", "confidence_score": 0.5}, headers=headers)
        self.assertEqual(code, 401)

    @defer.inlineCallbacks
    def test_health_and_metrics_need_no_token(self):
        """/health and /metrics answer without a token."""
        code, _, _, _ = yield get(self.images.url, "/health")
        self.assertEqual(code, 200)
        code, _, _, _ = yield get(self.defects.url, "/metrics")
        self.assertEqual(code, 200)


class NobodyByDefaultTests(TestCase):
    @defer.inlineCallbacks
    def test_empty_allow_list_and_no_tokens_lets_nobody_in(self):
        """With no allowed network and no token, nobody gets in."""
        svc = yield start_service(self, "defects", allow="")
        code, body = yield post_json(svc.url, "/defect/single", {"coil_number": "C", "defect_type": "d", "confidence_score": 0.5})
        self.assertEqual(code, 401)
