"""What the MQTT judge adds to the analysis of a large MQTT run.

    .venv/bin/python bench/mqtt_judge.py [--devices 10000] [--runs 3]

Builds a synthetic reconnect storm (``harness.report.synthetic_mqtt.storm``: every device
connects within 300 new connections per 15 s, publishes every 10 s, is dropped once and
reconnects as the limit admits, refused meanwhile; about 92 samples a device), then times,
alternately in one process, ``analyze_mqtt`` (the ``mqtt`` block: spans, series, storms, the
broker judge) and the whole ``analyze`` (every summary figure, the ``mqtt`` block included),
and prints the medians and the judge's share.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.analysis.mqtt import analyze_mqtt  # noqa: E402
from harness.analysis.summary import analyze  # noqa: E402
from harness.limits import LimitsTable  # noqa: E402
from harness.report.synthetic_mqtt import storm  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    samples = storm(devices=args.devices, limit=300, interval=10.0).samples()
    table = LimitsTable()
    judge_s, whole_s = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        block = analyze_mqtt(samples, table, pacing_mode="off")
        judge_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        analyze(samples, table, pacing_mode="off")
        whole_s.append(time.perf_counter() - t)
    j, w = statistics.median(judge_s), statistics.median(whole_s)
    print(f"{len(samples):,} samples, {args.devices:,} devices; findings {block['findings_total']}, "
          f"undecided {block['undecided_total']}, recovery {block['storms'][0]['recovery_s']:.1f} s")
    print(f"analyze_mqtt median {j:.2f} s ({j / len(samples) * 1e6:.2f} us/sample) of runs "
          f"{', '.join(f'{x:.2f}' for x in judge_s)}")
    print(f"analyze (whole summary) median {w:.2f} s of runs {', '.join(f'{x:.2f}' for x in whole_s)}; "
          f"MQTT block share {j / w:.0%}")


if __name__ == "__main__":
    main()
