"""Values read from query arguments."""

import datetime

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.coil_search import BadSearch, Search
from ccl.domain.query_values import optional_day
from ccl.domain.refusals import BadFilter, Period


class OptionalDayTests(SynchronousTestCase):
    def test_a_day_is_read_and_empty_is_none(self):
        """'2026-03-01 ' is that day; '' and None are no day."""
        self.assertEqual(optional_day(" 2026-03-01 ", "from", ValueError), datetime.date(2026, 3, 1))
        self.assertIsNone(optional_day("", "from", ValueError))
        self.assertIsNone(optional_day(None, "from", ValueError))

    def test_a_bad_day_is_refused_with_the_pages_own_error_naming_the_field(self):
        """Coil history answers BadSearch, the diagnostics pages BadFilter, each naming the field."""
        today = datetime.date(2026, 3, 1)
        with self.assertRaises(BadSearch) as search:
            Search.from_args({"from": "2026-02-30"}, today)
        self.assertIn("from: expected a date", str(search.exception))
        with self.assertRaises(BadFilter) as period:
            Period.from_args({"to": "yesterday"}, today)
        self.assertIn("to: expected a date", str(period.exception))
