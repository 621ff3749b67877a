-- What listings, HEADs and conditionals need of an object version, kept beside its hashmap
-- so that they never read it: the Pithos hash (Merkle root of the hashmap) and the number
-- of blocks. Versions made from a hashmap or by a partial update have their MD5 (Swift's
-- ETag) computed afterwards by a background job; until then `etag` is ''. Rows written
-- before this migration get their hash from the same job (NULL until then).
ALTER TABLE objects ADD COLUMN hash TEXT;
ALTER TABLE objects ADD COLUMN blocks BIGINT NOT NULL DEFAULT 0;
UPDATE objects SET blocks = LENGTH(hashmap) / 64;
CREATE INDEX objects_pending_digests ON objects (serial)
    WHERE (etag = '' OR hash IS NULL) AND NOT deleted;
