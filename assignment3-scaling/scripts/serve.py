"""Run the training API (FastAPI + uvicorn) on a tokenised corpus.

    uv run python assignment3-scaling/scripts/serve.py --service.db runs/api.sqlite --service.tokens tokens.bin
    # laptop CPU: a thousandth of the FLOPs, context 64, batches of 8
    uv run python assignment3-scaling/scripts/serve.py --service.tokens runs/corpus/tokens.bin \\
        --service.flops_scale 1e-3 --service.context_length 64 --service.batch_divisor 16 --service.devices cpu:1

Create keys with ``scripts/api_keys.py``. One server per store (a second one refuses to start); on start it
settles the queries a killed server left pending (``Store.recover_interrupted``). Keys may be sent as ``api_key=``
(the course's interface) or in an ``X-API-Key`` header; the access log shows ``api_key=[redacted]``.
"""

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.deployment import ServeConfig, serve


def main() -> None:
    serve(parse_config(ServeConfig, description=__doc__))


if __name__ == "__main__":
    main()
