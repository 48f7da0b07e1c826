"""Run the training API (FastAPI + uvicorn) on a tokenised corpus.

    uv run python assignment3-scaling/scripts/serve.py --db api.sqlite --tokens tokens.bin --port 8000
    # laptop CPU: a thousandth of the FLOPs, context 64, batches of 8
    uv run python assignment3-scaling/scripts/serve.py --db api.sqlite --tokens tokens.bin \
        --flops-scale 1e-3 --context-length 64 --batch-divisor 16 --devices cpu:1

Create keys with ``scripts/api_keys.py``. One server per ``--db`` (a second one refuses to start); on start it
settles the queries a killed server left pending (``Store.recover_interrupted``). Keys may be sent as ``api_key=``
(the course's interface) or in an ``X-API-Key`` header; the access log shows ``api_key=[redacted]``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

import uvicorn
from cs336_scaling.api import create_app
from cs336_scaling.deployment import ServiceConfig, build_service


def parse_args() -> tuple[ServiceConfig, str, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="SQLite file for keys, budgets and results")
    parser.add_argument("--tokens", required=True, help="flat uint16 token file to train on")
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument("--flops-scale", type=float, default=1.0, help="fraction of train_flops actually trained")
    parser.add_argument("--context-length", type=int, default=512)
    parser.add_argument("--batch-divisor", type=int, default=1, help="divide the requested batch size by this")
    parser.add_argument("--devices", default="auto", help="'auto' (all GPUs, else CPU), 'cpu:N', or 'cuda:0,cuda:1'")
    parser.add_argument("--executor", choices=["local", "submitit"], default="local")
    parser.add_argument("--submitit-folder", default="submitit_runs")
    parser.add_argument("--submitit-cluster", default=None, help="submitit cluster: slurm, local or debug")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = vars(parser.parse_args())
    config = ServiceConfig(**{f.name: args[f.name] for f in fields(ServiceConfig)})
    return config, args["host"], args["port"]


def main() -> None:
    config, host, port = parse_args()
    with build_service(config) as service:
        uvicorn.run(create_app(service), host=host, port=port)


if __name__ == "__main__":
    main()
