"""admin pages (being written)."""
