"""After fit: evaluate, predict, retrain and resume, all starting from a run directory or an .h5."""
