import os

from twisted.trial.unittest import SynchronousTestCase

from ccl.config import ConfigError, load_config


class ConfigTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def test_packaged_defaults(self):
        """Without a file or variables, the packaged defaults apply (MES 9304/9306, 고기원 9308-9310, no DSN)."""
        config = load_config({})
        self.assertEqual(config.get_endpoint("mes", "listen"), "tcp:9304")
        self.assertEqual(config.get_endpoint("mes", "ack_listen"), "tcp:9306")
        self.assertTrue(config.get_bool("mes", "reply_ack"))
        self.assertEqual(config.get_int("gokiwon", "schedule_port"), 9308)
        self.assertEqual(config.get_int("gokiwon", "wpd_port"), 9309)
        self.assertEqual(config.get_int("gokiwon", "speed_port"), 9310)
        self.assertEqual(config.get("database", "dsn"), "")

    def test_file_overrides_defaults_and_environment_overrides_file(self):
        """The file overrides the defaults, and a CCL_ variable overrides the file."""
        path = self.write("[mes]\nlisten = tcp:19304\n[gokiwon]\nhost = 10.1.2.3\n")
        config = load_config({"CCL_CONFIG": path, "CCL_MES_LISTEN": "tcp:29304"})
        self.assertEqual(config.get("mes", "listen"), "tcp:29304")
        self.assertEqual(config.get("gokiwon", "host"), "10.1.2.3")

    def test_unknown_key_in_file_names_it(self):
        """An unknown key in the file is refused with its section and name."""
        path = self.write("[mes]\nlistn = tcp:1\n")
        error = self.assertRaises(ConfigError, load_config, {"CCL_CONFIG": path})
        self.assertIn("[mes] listn", str(error))

    def test_unknown_section_names_it(self):
        """An unknown section in the file is refused with its name."""
        path = self.write("[mess]\nlisten = tcp:1\n")
        error = self.assertRaises(ConfigError, load_config, {"CCL_CONFIG": path})
        self.assertIn("[mess]", str(error))

    def test_unknown_environment_variable_names_it(self):
        """An unknown CCL_ variable is refused with its name."""
        error = self.assertRaises(ConfigError, load_config, {"CCL_MES_LISTN": "tcp:1"})
        self.assertIn("CCL_MES_LISTN", str(error))

    def test_missing_file_names_ccl_config(self):
        """A CCL_CONFIG naming a missing file is refused with a message naming CCL_CONFIG."""
        error = self.assertRaises(ConfigError, load_config, {"CCL_CONFIG": "/nonexistent/ccl.ini"})
        self.assertIn("CCL_CONFIG", str(error))

    def test_wrong_kinds_name_the_variable(self):
        """A value of the wrong kind (int, bool, endpoint, networks) is refused naming where it came from."""
        config = load_config({"CCL_GOKIWON_SCHEDULE_PORT": "nine", "CCL_MES_REPLY_ACK": "maybe",
                              "CCL_MES_LISTEN": "tcp:port", "CCL_INGEST_ALLOW": "10.0.0.0/8, nonsense"})
        self.assertIn("CCL_GOKIWON_SCHEDULE_PORT", str(self.assertRaises(ConfigError, config.get_int, "gokiwon", "schedule_port")))
        self.assertIn("CCL_MES_REPLY_ACK", str(self.assertRaises(ConfigError, config.get_bool, "mes", "reply_ack")))
        self.assertIn("CCL_MES_LISTEN", str(self.assertRaises(ConfigError, config.get_endpoint, "mes", "listen")))
        self.assertIn("nonsense", str(self.assertRaises(ConfigError, config.get_networks, "ingest", "allow")))

    def test_range_checked(self):
        """A number outside its allowed range is refused, saying the limit."""
        config = load_config({"CCL_GOKIWON_SPEED_PORT": "70000"})
        error = self.assertRaises(ConfigError, config.get_int, "gokiwon", "speed_port", 1, 65535)
        self.assertIn("maximum", str(error))

    def test_every_default_is_documented_by_a_comment(self):
        """Every setting in the packaged ccl.ini has a comment above it."""
        from importlib import resources

        lines = resources.files("ccl.data").joinpath("ccl.ini").read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if "=" in line and not line.startswith("#"):
                previous = lines[index - 1]
                self.assertTrue(previous.startswith("#") or "=" in previous,
                                f"setting {line!r} has no comment above it")

    def test_relative_path_made_absolute(self):
        """A relative path setting is made absolute."""
        config = load_config({"CCL_PATHS_VAR": "var"})
        self.assertEqual(str(config.get_path("paths", "var")), os.path.abspath("var"))
