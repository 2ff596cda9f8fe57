-- 060: indexes the web UI's read queries need (ccl/adapters/storage/ui_queries/).

-- The two halves of an image pair find each other by pair_id.
CREATE INDEX images_pair ON images (pair_id) WHERE pair_id IS NOT NULL;

-- The image viewer draws the boxes of the defects that point at an image.
CREATE INDEX defect_detections_original_image ON defect_detections (original_image_id) WHERE original_image_id IS NOT NULL;
CREATE INDEX defect_detections_labeled_image ON defect_detections (labeled_image_id) WHERE labeled_image_id IS NOT NULL;

-- 코일 이력: "coils with a defect of type X" is one probe per coil instead of a walk over its defects.
CREATE INDEX defect_detections_coil_type ON defect_detections (coil_number, defect_type);

-- 통계: the aggregates over a date range read only this index (index-only scans).
CREATE INDEX defect_detections_time_cover ON defect_detections (detection_time)
    INCLUDE (defect_type, severity, confidence_score, coil_number);
