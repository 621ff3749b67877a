-- Neutron's allowed address pairs (docs/networks.md): the other addresses (an IP or a
-- CIDR) a port may send from, each with the MAC it may use for them, as a JSON list of
-- {"ip_address", "mac_address"}. Additive: an older binary ignores the column.
ALTER TABLE ports ADD COLUMN allowed_address_pairs TEXT NOT NULL DEFAULT '[]';
