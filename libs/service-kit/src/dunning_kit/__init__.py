"""What every dunning service shares: settings, clock, database, auth, health, logs, lifecycle."""
