"""ledger_sync"""
