"""reviews pages (being written)."""
