"""The partition core: the one writer of a partition's state, applying commands deterministically."""
