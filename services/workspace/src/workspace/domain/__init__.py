"""domain of workspace."""
