-- 122: which plant server's image store holds an image's files (two plant servers, one
-- database: docs/operations.md, "Two plant servers: images"). ccl-images writes its [images]
-- host_name; the UI of the other machine fetches the file from that host's ccl-images.
-- Rows stored before this column existed keep NULL: "the store of the machine reading it"
-- (what every machine assumed until now). Nothing can tell after the fact which machine
-- received them, so no value is guessed; a nullable column without a default is added
-- without rewriting the table.
ALTER TABLE images ADD COLUMN stored_on text;
