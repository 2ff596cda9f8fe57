"""Rules of the Jetson ingestion API (images, defects, tokens, retention), as pure functions."""
