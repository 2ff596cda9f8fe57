"""The Jetson ingestion services: image pairs (ccl-images, 8081) and defects (ccl-defects, 8082)."""
