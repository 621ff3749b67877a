-- Routers join private subnets to an external network (SNAT out, floating IPs in); each
-- runs on one node. Their interfaces and gateways are ports (device_owner
-- network:router_interface and network:router_gateway, device_id the router's id).
CREATE TABLE routers (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL,
    admin_state_up      BOOLEAN NOT NULL,
    external_network_id TEXT,
    enable_snat         BOOLEAN NOT NULL,
    node_id             TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    revision            BIGINT NOT NULL
);
CREATE INDEX routers_project ON routers (project_id, id);
CREATE INDEX routers_node ON routers (node_id);

-- A floating IP is an address of an external network (held by a port with device_owner
-- network:floatingip) that a router forwards to a port's fixed address.
CREATE TABLE floating_ips (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    floating_network_id TEXT NOT NULL,
    floating_port_id    TEXT NOT NULL,
    floating_ip_address TEXT NOT NULL,
    port_id             TEXT,
    fixed_ip_address    TEXT,
    router_id           TEXT,
    description         TEXT NOT NULL,
    charged_to          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    revision            BIGINT NOT NULL
);
CREATE INDEX floating_ips_project ON floating_ips (project_id, id);
CREATE INDEX floating_ips_router ON floating_ips (router_id);
CREATE UNIQUE INDEX floating_ips_port ON floating_ips (port_id, fixed_ip_address);
