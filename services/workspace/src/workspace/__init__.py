"""workspace: the server-rendered web application AR staff work in (see services/workspace/README.md)."""
