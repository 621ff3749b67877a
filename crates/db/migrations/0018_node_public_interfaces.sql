-- Whether a node has a public interface (a device on the provider's network, joined to
-- external networks' bridges): routers run on such nodes where there are any.
ALTER TABLE compute_nodes ADD COLUMN public_network BOOLEAN NOT NULL DEFAULT FALSE;
