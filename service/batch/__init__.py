"""Batch scoring at payer scale (``cartscout score``): the local engine, the Spark engine, and the
files a run writes (scores, worklist, report). See ``docs/batch.md``."""
