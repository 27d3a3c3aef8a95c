"""entrypoints of workspace."""
