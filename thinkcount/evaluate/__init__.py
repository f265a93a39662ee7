"""Evaluation: metrics with intervals, the comparison and its verdicts, the report, the engine simulation."""
