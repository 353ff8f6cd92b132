"""Aggregate page views into the article ranking (the demo's well-behaved batch)."""

from __future__ import annotations

import os
import random
import time


def main() -> None:
    window = os.environ.get("RANKING_WINDOW", "24h")
    slot = os.environ.get("JOBDECK_SCHEDULED_FOR", "now")
    print(f"ranking: aggregating page views over {window} for slot {slot}", flush=True)
    views = {f"article-{i}": random.randint(0, 10_000) for i in range(200)}
    time.sleep(random.uniform(0.5, 2.0))
    top = sorted(views.items(), key=lambda item: item[1], reverse=True)[:5]
    for rank, (article, count) in enumerate(top, 1):
        print(f"  #{rank} {article}: {count} views")
    print("ranking: done", flush=True)


if __name__ == "__main__":
    main()
