-- 081: images (received_at), for GET /stats of ccl-images: the newest upload (its time and
-- coil) is one probe instead of a sort of the whole table. Images arrive a few a second at
-- most, so the index costs their inserts next to nothing.
CREATE INDEX images_received ON images (received_at);
