-- Why an operator drained a node (Nova's `disabled_reason` of its compute service).
ALTER TABLE compute_nodes ADD COLUMN drained_reason TEXT;
