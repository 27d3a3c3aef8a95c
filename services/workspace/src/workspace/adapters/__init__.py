"""adapters of workspace."""
