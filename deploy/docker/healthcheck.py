"""Container HEALTHCHECK: GET /healthz on the service's own port with the standard library (no curl in the image)."""

import os
import sys
import urllib.request

port = os.environ.get("HTTP_PORT", "8000")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure (refused, timeout, 5xx) is "unhealthy"
    print(f"healthcheck failed: {exc}", file=sys.stderr)
    sys.exit(1)
