"""The plant's time (ccl/domain/plant_time.py): Asia/Seoul by the clock given, whatever the
process's time zone."""

import datetime
import os
import time

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.plant_time import plant_now, plant_today

UTC = datetime.timezone.utc


class PlantTimeTests(SynchronousTestCase):
    def in_time_zone(self, zone: str) -> None:
        before = os.environ.get("TZ")

        def restore():
            if before is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = before
            time.tzset()

        self.addCleanup(restore)
        os.environ["TZ"] = zone
        time.tzset()

    def test_the_plant_day_turns_at_midnight_in_seoul_whatever_the_process_time_zone(self):
        """The plant day turns at midnight in Seoul (15:00 UTC), whatever the process's time zone."""
        for zone in ("UTC", "Asia/Seoul", "America/Los_Angeles"):
            self.in_time_zone(zone)
            clock = task.Clock()
            clock.advance(datetime.datetime(2026, 2, 28, 14, 59, 59, tzinfo=UTC).timestamp())
            self.assertEqual(plant_today(clock), datetime.date(2026, 2, 28), zone)
            clock.advance(1)
            self.assertEqual(plant_today(clock), datetime.date(2026, 3, 1), zone)
            self.assertEqual(plant_now(clock), datetime.datetime(2026, 2, 28, 15, 0, tzinfo=UTC), zone)
            self.assertEqual(plant_now(clock).utcoffset(), datetime.timedelta(hours=9), zone)
