"""Storage: RocksDB with group commit (``store``) and the one place keys are built (``keys``)."""
