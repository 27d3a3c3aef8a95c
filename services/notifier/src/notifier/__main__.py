"""`python -m notifier`: run the service with settings from the environment."""

import gc
import os

import notifier.bootstrap  # noqa: F401  (imported before the freeze below, so its objects are frozen too)
from dunning_kit.serve import serve

# A dispatch batch allocates hundreds of thousands of short-lived containers (rows, contexts, messages,
# events); with CPython's default thresholds (700, 10, 10) the cyclic collector ran so often - and its
# full passes walked every module object of the process - that it took ~30% of the CPU of an email.
# Objects alive after start-up are frozen out of the collector's sight, and collections come less often;
# cyclic garbage is still collected.
GC_THRESHOLDS = (20_000, 50, 100)

if __name__ == "__main__":
    if os.environ.get("NOTIFIER_GC_TUNING", "true").lower() not in ("0", "false", "no"):
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    serve("notifier")
