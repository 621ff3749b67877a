-- The CPU features a node's accelerator offers guests (a JSON array of QEMU's names), and
-- the CPU model each server was given (a name of nefos's catalogue; absent: the
-- default), by which the scheduler places servers only where their model runs.
ALTER TABLE compute_nodes ADD COLUMN cpu_features TEXT NOT NULL DEFAULT '[]';
ALTER TABLE servers ADD COLUMN cpu_model TEXT;
