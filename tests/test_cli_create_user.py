"""ccl create-user as a real subprocess against a real database."""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.accounts import verify_password
from tests.support.database import fresh_database, query

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args, stdin="", env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k.startswith("CCL_TEST")}
    env["PYTHONPATH"] = ROOT
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ccl", *args], input=stdin, capture_output=True, text=True, env=env)


class CreateUserTests(SynchronousTestCase):
    def setUp(self):
        self.dsn = fresh_database(self)

    def test_password_from_stdin_is_stored_hashed_and_audited(self):
        """A password read from stdin is stored as an argon2id hash only, and the creation is audited."""
        result = run_cli(["create-user", "kim.op", "--role", "operator", "--dsn", self.dsn], stdin="correct horse battery\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        [(role, stored)] = query(self.dsn, "SELECT role, password_hash FROM users WHERE username = 'kim.op'")
        self.assertEqual(role, "operator")
        self.assertNotIn("correct horse", stored)
        self.assertTrue(stored.startswith("$argon2id$"))
        self.assertTrue(verify_password(stored, "correct horse battery"))
        self.assertFalse(verify_password(stored, "wrong password"))
        self.assertEqual(query(self.dsn, "SELECT action, target, result FROM audit_logs"), [("user.create", "kim.op", "ok")])

    def test_generated_password_printed_once_and_works(self):
        """--generate-password prints the new password, and it verifies against the stored hash."""
        result = run_cli(["create-user", "admin", "--role", "admin", "--generate-password", "--dsn", self.dsn])
        self.assertEqual(result.returncode, 0, result.stderr)
        password = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
        [(stored,)] = query(self.dsn, "SELECT password_hash FROM users WHERE username = 'admin'")
        self.assertTrue(verify_password(stored, password))

    def test_duplicate_user_refused_and_unchanged(self):
        """Creating an existing user exits 1 with 'already exists' and leaves that user unchanged."""
        run_cli(["create-user", "lee", "--role", "viewer", "--dsn", self.dsn], stdin="first password 1\n")
        result = run_cli(["create-user", "lee", "--role", "admin", "--dsn", self.dsn], stdin="second password 2\n")
        self.assertEqual(result.returncode, 1)
        self.assertIn("already exists", result.stderr)
        self.assertEqual(query(self.dsn, "SELECT role FROM users WHERE username = 'lee'"), [("viewer",)])

    def test_bad_input_gets_a_message_and_writes_nothing(self):
        """A bad user id or a short password exits 2 with a message, no traceback, and no user written."""
        for args, stdin, expected in [
            (["create-user", "bad name", "--role", "viewer"], "long enough pw\n", "user id"),
            (["create-user", "park", "--role", "viewer"], "short\n", "at least"),
        ]:
            result = run_cli([*args, "--dsn", self.dsn], stdin=stdin)
            self.assertEqual(result.returncode, 2)
            self.assertIn(expected, result.stderr)
            self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM users"), [(0,)])

    def test_bad_configuration_is_a_message_not_a_traceback(self):
        """An unknown CCL_ variable exits 2 with a message naming it, not a traceback."""
        result = run_cli(["create-user", "choi", "--role", "viewer"], stdin="long enough pw\n",
                         env_extra={"CCL_MES_LISTN": "tcp:1"})
        self.assertEqual(result.returncode, 2)
        self.assertIn("CCL_MES_LISTN", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
