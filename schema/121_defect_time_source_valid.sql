-- 121: validate 120's CHECK on the rows stored before it. VALIDATE CONSTRAINT scans the table
-- under SHARE UPDATE EXCLUSIVE: inserts and reads go on meanwhile (migrations run one file a
-- transaction, so this is its own).
ALTER TABLE defect_detections VALIDATE CONSTRAINT defect_detections_time_source;
