"""Stage scripts, run by dvc as `python -m stages.NAME` from the workspace root so that they import
that workspace's own library. Under dvc (which sets DVC_STAGE for every command) importing the package reads
the stage's launchers before a stage module's seconds of imports (thinkcount/pipeline/launcher.py)."""
import os

from thinkcount.pipeline.launcher import watch_launchers

if "DVC_STAGE" in os.environ:
    watch_launchers()
