"""Azure ML entry script: the deployment's ``scoring_script``. Azure ML's inference server
calls ``init()`` once and ``run(raw_data)`` per request; ``shutdown()`` stops what
``init()`` started (also at exit). All live in ``stream.http.azureml`` (see its docstring
and README, "Azure ML")."""

from fraudstream.stream.http.azureml import init, run, shutdown

__all__ = ["init", "run", "shutdown"]
