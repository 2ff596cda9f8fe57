"""Backups: pgBackRest for the database, an incremental verified copy of the image store."""
