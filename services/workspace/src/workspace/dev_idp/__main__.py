"""`python -m workspace.dev_idp --port 8007`: the development identity provider, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os

import uvicorn

from dunning_kit.clock import clock_from_settings
from dunning_kit.dev_secrets import DEV_OIDC_CLIENT_SECRET
from workspace.dev_idp.provider import DevIdentityProvider, RegisteredClient
from workspace.dev_idp.users import seeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8007)
    parser.add_argument("--issuer", default=None, help="Issuer URL (default http://HOST:PORT)")
    parser.add_argument("--workspace-url", default="http://127.0.0.1:8006", help="Where the workspace listens")
    parser.add_argument("--client-id", default="workspace")
    parser.add_argument("--client-secret", default=DEV_OIDC_CLIENT_SECRET)
    args = parser.parse_args()
    issuer = args.issuer or f"http://{args.host}:{args.port}"
    client = RegisteredClient.for_workspace(args.client_id, args.client_secret, args.workspace_url)
    # The system's time, or a simulation's shared CLOCK_FILE (the workspace checks the tokens at its own clock).
    provider = DevIdentityProvider(issuer, [client], seeded(), clock_from_settings(os.environ.get("CLOCK_FILE")))
    print(f"development identity provider at {issuer} (never use it in production); its people:", flush=True)
    for person in provider.people.values():
        print(f"  {person.username} / {person.password}: {', '.join(person.roles or [])}", flush=True)
    # Plain uvicorn, not the kit's devfakes server: this module ships in the workspace's package, whose runtime
    # imports nothing development-only (tests/deploy/test_runtime_dependencies.py).
    uvicorn.run(provider.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
