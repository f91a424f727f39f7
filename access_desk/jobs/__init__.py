"""The job engine: the runner (claims, steps, follow-ups), chunks and the background worker."""
