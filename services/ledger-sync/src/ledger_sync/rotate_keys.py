"""Re-encrypt every connector credential under the newest data-encryption key: `python -m ledger_sync.rotate_keys`."""

from __future__ import annotations

import sys

from dunning_kit.key_rotation import main
from ledger_sync.adapters.credentials import reseal_all

if __name__ == "__main__":
    sys.exit(main("ledger-sync", reseal_all))
