"""Re-encrypt every tenant's webhook signing secret under the newest data-encryption key:
`python -m notifier.rotate_keys`."""

from __future__ import annotations

import sys

from dunning_kit.key_rotation import main
from notifier.adapters.channel_secrets import reseal_all

if __name__ == "__main__":
    sys.exit(main("notifier", reseal_all))
