"""Read queries of the web UI's data pages, one module per page.

Every function takes a ``Database`` (anything with txpostgres' ``runQuery`` and
``runInteraction``), is parameterised, and fires with plain dicts/lists ready for a template or
``json.dumps``. The indexes and summaries they rely on are in schema/001, 060, 070 (the
statistics' daily roll-up, kept by rollup.py) and 071 (each coil's newest schedule row);
bench/ui_queries.py measures them on 50,000 coils and 1,000,000 defects.
"""

from ccl.adapters.storage.ui_queries import coil, dashboard, history, models, rollup, stats

__all__ = ["coil", "dashboard", "history", "models", "rollup", "stats"]
