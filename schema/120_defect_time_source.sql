-- 120: where a defect's detection_time came from (issue 13, item 2): 'box' (the box's own
-- detection_time, on the box's clock) or 'received' (the box sent none: the server stamped its
-- receipt). Coil tracking applies the camera's clock offset to box stamps only and gives a
-- receipt stamp its larger uncertainty (docs/tracking.md, "Placement").
-- A constant DEFAULT makes ADD COLUMN metadata-only (PostgreSQL 11+: no rewrite of the big
-- table, the ACCESS EXCLUSIVE lock only for a moment); rows stored before it read as 'box',
-- which is what tracking assumed for them. The CHECK is NOT VALID here (new rows are checked
-- at once, no scan under that lock); 121 validates it in a transaction of its own, under a
-- lock that lets ingestion go on.
ALTER TABLE defect_detections
    ADD COLUMN detection_time_source text NOT NULL DEFAULT 'box';
ALTER TABLE defect_detections
    ADD CONSTRAINT defect_detections_time_source CHECK (detection_time_source IN ('box', 'received')) NOT VALID;
