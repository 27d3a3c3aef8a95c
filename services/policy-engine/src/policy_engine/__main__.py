"""`python -m policy_engine`: run the service with settings from the environment."""

import gc

import policy_engine.bootstrap  # noqa: F401  (the whole service imported before the heap is frozen)
from dunning_kit.serve import serve

if __name__ == "__main__":
    # The timer allocates a few dozen objects per decision (cases, notes, rows) and thousands per batch. With
    # the default thresholds the collector runs every 700 allocations and keeps re-scanning the large, immortal
    # heap the imports left behind (SQLAlchemy, pydantic, FastAPI, aiokafka): freeze that heap out of every
    # collection and collect young objects less often. Nothing here relies on cycles being freed promptly.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    serve("policy-engine")
