"""`python -m policy_engine.validate FILE...`: check policy files (YAML or JSON) the way the API does.

Prints every error as `file: path: reason` and exits 1 if any file is invalid (for CI on a policy repo).
"""

from __future__ import annotations

import sys
from pathlib import Path

from policy_engine.domain.policy import InvalidPolicy, parse_policy_text, validate_policy


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    failed = 0
    for name in paths:
        path = Path(name)
        kind = "application/json" if path.suffix == ".json" else "application/yaml"
        try:
            doc = validate_policy(parse_policy_text(path.read_text(), kind))
        except InvalidPolicy as exc:
            failed += 1
            for err in exc.errors:
                print(f"{name}: {err}")
        except OSError as exc:
            failed += 1
            print(f"{name}: {exc}")
        else:
            print(f"{name}: ok (policy {doc.id}, {len(doc.steps)} steps)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
