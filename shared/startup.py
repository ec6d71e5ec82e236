"""What every gymrec command sets before numpy loads: each CLI imports this module first.

numpy's OpenBLAS starts a thread per core as it is imported (~0.05-0.1 s of a command's start on
2 cores, and a thread that sleeps beside the game); gymrec does no linear algebra. A setting the
user made wins. Processes the commands start (workers, an auto-started writer) inherit it.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
