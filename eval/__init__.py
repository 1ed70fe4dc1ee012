"""eval - benchmark readers, protocols, metrics, the simulated taste world and `python -m eval.run`."""
