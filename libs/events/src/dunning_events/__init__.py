"""Event contracts and event plumbing shared by every dunning service."""
