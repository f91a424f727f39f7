"""The simulated platform (simulator/)."""
