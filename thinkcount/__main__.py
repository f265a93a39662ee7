"""The command line of the project: python -m thinkcount VERB [ARGS]; `python -m thinkcount VERB -h` for each.

    check [PARAMS]     validate params.yaml (names, types, ranges) before any dvc command (thinkcount/ops/check.py)
    predict            score prompts with a trained model folder (thinkcount/serve/predict.py)
    serve              the scoring service, and with --upstream the priority proxy (thinkcount/serve/service.py)
    replay             replay prompts against an OpenAI-compatible engine (thinkcount/serve/replay.py)
    drift              the served predictor's tau on its traffic log, by model and window (thinkcount/serve/drift.py)
    adapt              fit a model to a deployment's own traces: a head over a base model (thinkcount/serve/adapt.py)
    ingest             turn public trace files into canonical records (thinkcount/data/ingest.py)
    fetch              download or copy the listed real-trace files, sha256-checked (thinkcount/data/fetch.py)
    gate               the regression gate against committed floors (thinkcount/ops/gate.py)
    profile            run a params profile as a DVC experiment (thinkcount/ops/profile.py)
    scratch            a scratch copy with a profile merged, run whole by make ci-repro and make real
    sweep              seed sets as DVC experiments and their summary (thinkcount/ops/sweep.py)
    engine             build the tiny model and run vLLM's OpenAI server, the real engine (thinkcount/ops/engine.py)

Run `check` before a bare `dvc repro` or `dvc exp run -S ...`: DVC renders names into shell commands and
deletes a stage's declared outputs before any code of the project runs, so only a check beforehand can
stop a name such as `x; rm -rf ~` or `../../data`. `make run`, the profiles and the seed sweep run it.
This is the one place where a UserError becomes an exit status (the DVC stages' own is thinkcount.pipeline.stage).
"""
import argparse
import importlib
import sys

from thinkcount import exit_status

VERBS = {"check": "thinkcount.ops.check", "predict": "thinkcount.serve.predict", "serve": "thinkcount.serve.service",
         "replay": "thinkcount.serve.replay", "drift": "thinkcount.serve.drift", "adapt": "thinkcount.serve.adapt",
         "ingest": "thinkcount.data.ingest", "fetch": "thinkcount.data.fetch", "gate": "thinkcount.ops.gate",
         "profile": "thinkcount.ops.profile",
         "scratch": "thinkcount.ops.scratch", "sweep": "thinkcount.ops.sweep", "engine": "thinkcount.ops.engine"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("verb", choices=list(VERBS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the verb's own arguments")
    args = parser.parse_args(argv)
    # Each verb's module is imported only when asked for: `check` must not wait for torch.
    run = importlib.import_module(VERBS[args.verb]).main
    return exit_status(lambda: run(args.args))


if __name__ == "__main__":
    sys.exit(main())
