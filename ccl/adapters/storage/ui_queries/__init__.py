"""Read queries of the web UI's data pages, one module per page.

Every function takes a ``Database`` (anything with txpostgres' ``runQuery`` and
``runInteraction``), is parameterised, and fires with plain dicts/lists ready for a template or
``json.dumps``. The indexes they rely on are in schema/001_initial.sql and schema/060_ui_indexes.sql;
bench/ui_queries.py measures them on 50,000 coils and 1,000,000 defects.
"""

from ccl.adapters.storage.ui_queries import coil, dashboard, history, models, stats

__all__ = ["coil", "dashboard", "history", "models", "stats"]
