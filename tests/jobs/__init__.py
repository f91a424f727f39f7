"""The job engine: runner, item claims, cancelling, retrying and follow-ups, the worker."""
