"""The execution loop: the worker pool, the executor, the reconciler, retries and locks."""
