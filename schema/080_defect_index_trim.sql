-- 080: defect_detections_time (detection_time) dropped. defect_detections_time_cover (060) has
-- the same key, so every range and "newest first" scan can use that one, and each stored
-- defect paid a B-tree insertion for nothing: about 5 ms of PostgreSQL CPU per batch of
-- 1,000 (bench/ingest_defects.py). The UI's p95 (bench/ui_queries.py, 1,000,000 defects) is
-- unchanged without it.
--
-- defect_detections_type_time stays: without it "coils with a defect of a type that does not
-- occur" walks every coil of the range (코일 이력: 2 ms -> 39 ms measured).
DROP INDEX IF EXISTS defect_detections_time;
