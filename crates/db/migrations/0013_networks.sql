-- Networks (docs/networks.md): Neutron's networks, subnets and ports, and the IPAM that
-- gives ports their addresses. Portable SQL, as in 0001.

-- A network is a layer-2 segment: a bridge on every node with a port on it, joined
-- across nodes by VXLAN with its own VNI. `external` is Neutron's router:external (the
-- provider's public networks). A network whose creation charged
-- cyclades.network.private names the user charged in `charged_to`.
CREATE TABLE networks (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL,
    admin_state_up        BOOLEAN NOT NULL,
    shared                BOOLEAN NOT NULL,
    external              BOOLEAN NOT NULL,
    mtu                   BIGINT NOT NULL,
    port_security_enabled BOOLEAN NOT NULL,
    vni                   BIGINT NOT NULL UNIQUE,
    charged_to            TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    revision              BIGINT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id, id);
INSERT INTO counters (name, value) VALUES ('network_vni', 0);

-- A subnet is an address block of a network. dns_nameservers and host_routes are JSON.
CREATE TABLE subnets (
    id                TEXT PRIMARY KEY,
    network_id        TEXT NOT NULL REFERENCES networks (id),
    project_id        TEXT NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL,
    ip_version        BIGINT NOT NULL,
    cidr              TEXT NOT NULL,
    gateway_ip        TEXT,
    enable_dhcp       BOOLEAN NOT NULL,
    ipv6_address_mode TEXT,
    ipv6_ra_mode      TEXT,
    dns_nameservers   TEXT NOT NULL,
    host_routes       TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    revision          BIGINT NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id, created_at, id);

-- The ranges a subnet hands out addresses from; fixed IPs asked for by address may lie
-- outside them.
CREATE TABLE allocation_pools (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    first_ip  TEXT NOT NULL,
    last_ip   TEXT NOT NULL,
    PRIMARY KEY (subnet_id, first_ip)
);

-- A port is a virtual NIC on a network: a MAC, fixed IPs, and the device it is on.
CREATE TABLE ports (
    id                    TEXT PRIMARY KEY,
    network_id            TEXT NOT NULL REFERENCES networks (id),
    project_id            TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL,
    mac_address           TEXT NOT NULL UNIQUE,
    admin_state_up        BOOLEAN NOT NULL,
    status                TEXT NOT NULL,
    device_id             TEXT NOT NULL,
    device_owner          TEXT NOT NULL,
    port_security_enabled BOOLEAN NOT NULL,
    binding_host          TEXT,
    charged_to            TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    revision              BIGINT NOT NULL
);
CREATE INDEX ports_network ON ports (network_id);
CREATE INDEX ports_project ON ports (project_id, id);
CREATE INDEX ports_device ON ports (device_id);

-- A port's fixed IPs. The primary key is what makes allocation race-free: two ports can
-- never hold one address of a subnet, whatever the interleaving of their transactions.
CREATE TABLE ip_allocations (
    subnet_id  TEXT NOT NULL REFERENCES subnets (id),
    address    TEXT NOT NULL,
    port_id    TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    network_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, address)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);

-- Which port (of which project, on which device) held which address, from when to when:
-- Synnefo's IP log, kept for abuse reports after the port is gone.
CREATE TABLE ip_history (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    network_id   TEXT NOT NULL,
    subnet_id    TEXT NOT NULL,
    port_id      TEXT NOT NULL,
    project_id   TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    allocated_at BIGINT NOT NULL,
    released_at  BIGINT
);
CREATE INDEX ip_history_address ON ip_history (address, allocated_at);
CREATE INDEX ip_history_open ON ip_history (port_id, released_at);
