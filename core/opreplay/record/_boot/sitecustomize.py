"""Put first on PYTHONPATH by `opreplay record`: records this interpreter (see opreplay.record.boot).

It must never stop the program from starting: if recording cannot start, it says why on stderr
and the program runs unrecorded. Then it runs the `sitecustomize` it shadows, if there is one.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _start_recording() -> None:
    try:
        # `from` imports: `import opreplay.record.boot` would meet the function opreplay.record.
        try:
            from opreplay.record.boot import start_from_environment
        except ImportError:  # an interpreter without opreplay: use the recording one's, after its own
            sys.path.append(os.environ.get("OPREPLAY_RECORD_FALLBACK_PATH", ""))
            from opreplay.record.boot import start_from_environment
        start_from_environment()
    except Exception as error:  # any failure: run the program unrecorded
        print(f"opreplay: not recording this process: {error}", file=sys.stderr)


def _run_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_start_recording()
_run_shadowed_sitecustomize()
