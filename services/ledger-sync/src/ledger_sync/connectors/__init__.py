"""ERP connectors: each maps its vendor's objects to canonical ledger changes behind one small interface."""
