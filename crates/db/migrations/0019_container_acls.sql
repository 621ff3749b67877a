-- Swift's container ACLs (docs/object-storage.md): who besides the account's owners may
-- read (X-Container-Read) and write (X-Container-Write) a container's objects, as the
-- cleaned comma-separated text Swift stores. Additive: an older binary ignores them and
-- grants only what it granted before.
ALTER TABLE containers ADD COLUMN read_acl TEXT NOT NULL DEFAULT '';
ALTER TABLE containers ADD COLUMN write_acl TEXT NOT NULL DEFAULT '';
