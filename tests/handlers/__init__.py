"""The HTTP edge: calls in flight, triggers and webhooks."""
