"""What ``./dev`` and ``./test`` run; ``python -m scripts.dev`` (from the repository root) is
``./dev``'s runner."""
