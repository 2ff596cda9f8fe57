"""system pages (being written)."""
