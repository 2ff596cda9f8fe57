"""The interpreter tuning of the high-rate services."""

import gc
import sys

from twisted.trial.unittest import SynchronousTestCase

from ccl.adapters.runtime import YOUNG_COLLECTION_EVERY, tune_interpreter


class TuneInterpreterTests(SynchronousTestCase):
    def setUp(self):
        thresholds, interval = gc.get_threshold(), sys.getswitchinterval()

        def restore():
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            sys.setswitchinterval(interval)

        self.addCleanup(restore)

    def test_start_up_objects_are_frozen_and_young_collections_are_rarer(self):
        """Start-up objects are frozen, young collections rarer, and the thread switch interval 1 ms."""
        gc.set_threshold(700, 10, 10)
        gc.unfreeze()
        before = gc.get_freeze_count()
        survivor = [[n] for n in range(100)]  # lists are tracked by the collector
        tune_interpreter()
        self.assertGreaterEqual(gc.get_freeze_count(), before + len(survivor))
        self.assertEqual(gc.get_threshold(), (YOUNG_COLLECTION_EVERY, 10, 10))
        self.assertEqual(sys.getswitchinterval(), 0.001)
