"""Stage scripts, run by dvc as `python -m stages.NAME` from the workspace root so that they import
that workspace's own library."""
