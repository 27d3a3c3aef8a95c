"""`python -m workspace`: run the service with settings from the environment."""

from dunning_kit.serve import serve

if __name__ == "__main__":
    serve("workspace")
