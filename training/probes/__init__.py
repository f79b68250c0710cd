"""Research probes: quick questions asked of a trained model or of the data, outside the
training core (`python -m training.probes.NAME --help`)."""
