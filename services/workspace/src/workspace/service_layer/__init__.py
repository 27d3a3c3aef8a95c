"""service_layer of workspace."""
