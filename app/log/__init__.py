"""The evidence log: Merkle tree, sealer, signed checkpoints, proofs, vouchers' evidence."""
