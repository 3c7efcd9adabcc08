import sys

from .cli import main

# The guard matters: Dask's worker processes start with multiprocessing's "spawn", which imports the
# parent's main module again (as __mp_main__); that import must not run the command a second time.
if __name__ == "__main__":
    sys.exit(main())
