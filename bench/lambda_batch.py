"""The Lambda handler's cost per batch on a real PostgreSQL: cold (load mappings, connect) and warm invocations.

    .venv/bin/python -m bench.lambda_batch [--records 1000] [--batches 20]

Each batch holds ``--records`` INSERT/MODIFY records of distinct keys of the example table (tests/events), the
shape a Lambda event source mapping delivers. Prints the cold call, the median and worst warm call, and records/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.apply import database
from ddbrepl import aws_lambda
from tests.helpers import ROOT

MAPPINGS = str(ROOT / "tests" / "mappings" / "example")
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2026-11-25T00:00:00.000"


def event(first_seq: int, records: int, keys: int) -> dict[str, Any]:
    out = []
    for i in range(records):
        seq = first_seq + i
        ident = str(seq % keys)
        out.append({"eventID": str(seq), "eventName": "MODIFY", "eventSourceARN": ARN, "eventSource": "aws:dynamodb",
                    "dynamodb": {"Keys": {"Id": {"N": ident}}, "SequenceNumber": str(seq),
                                 "ApproximateCreationDateTime": 1764028800.0, "StreamViewType": "NEW_IMAGE",
                                 "NewImage": {"Id": {"N": ident}, "Message": {"S": f"message {seq}"}}}})
    return {"Records": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with database(durable=True) as pg_url:
        subprocess.run([sys.executable, "-m", "ddbrepl", "--database-url", pg_url, "--mappings", MAPPINGS,
                        "init-schema"], check=True, capture_output=True)
        os.environ.update(DDBREPL_MAPPINGS=MAPPINGS, DDBREPL_DATABASE_URL=pg_url, DDBREPL_LOG_FORMAT="text")
        aws_lambda.reset()
        times = []
        for b in range(args.batches + 1):
            ev = event(10**20 + b * args.records, args.records, keys=50_000)
            started = time.perf_counter()
            assert aws_lambda.handler(ev, None) == {"batchItemFailures": []}
            times.append(time.perf_counter() - started)
        aws_lambda.reset()
        cold, warm = times[0], times[1:]
        med = statistics.median(warm)
        print(f"cold call ({args.records} records): {cold * 1000:7.1f} ms (mappings, connection, first batch)")
        print(f"warm calls: median {med * 1000:7.1f} ms, worst {max(warm) * 1000:7.1f} ms, "
              f"{args.records / med:,.0f} records/s (durable commits)")


if __name__ == "__main__":
    main()
