"""eval.py's library: the metric classifier this project trains and ships, the metrics
(FID, IS, KID, precision/recall, per class), their bootstrap intervals, nearest
training neighbours, and the evaluator that runs them over a run's checkpoints."""
