"""What the metrics' counters cost the write path, A/B in one process on the 10 M table.

``python -m bench.rollup_cost [--db tt_bench10m_metrics] [--tasks 3000] [--rounds 6]``
times ``bench.dashboard.write_path`` (PENDING, STARTED, SUCCESS in flushes of 200 rows)
alternately with tasktrail's flush statement and with the same statement without its
last part (the rollup of :mod:`tasktrail.store.rollup`: the history insert is then the
main statement again, as before migration 0008). Interleaving the two in one process
spreads a shared machine's noise over both; two separate runs on a busy machine differ
by more than the effect. The database must hold a data set (``python -m bench.dashboard
--load-only``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any


def without_rollup(statement: str) -> str:
    """The flush statement as it was before the counters: history insert last."""
    head, _, _ = statement.partition(" RETURNING task_id, state, attempt), done AS (")
    return head.replace("), hist AS (INSERT INTO", ") INSERT INTO", 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_cost", description=__doc__)
    parser.add_argument("--db", default="tt_bench10m_metrics")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    from bench import dashboard

    dashboard._setup_django(args.db)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from tasktrail.store import write

    original = write._postgresql_statement

    def old(connection: Any) -> str:
        return without_rollup(original(connection))

    runs: dict[str, list[dict[str, float]]] = {"with counters": [], "without": []}
    for n in range(args.rounds):
        order = [("with counters", original), ("without", old)]
        for label, statement in order if n % 2 == 0 else order[::-1]:
            write._postgresql_statement = statement  # type: ignore[assignment]
            runs[label].append(dashboard.write_path(args.tasks))
    write._postgresql_statement = original  # type: ignore[assignment]
    print(f"write path, {args.tasks} tasks x {args.rounds} rounds (interleaved), median:")
    medians = {
        label: {k: statistics.median(r[k] for r in found) for k in found[0]}
        for label, found in runs.items()
    }
    for label, found in medians.items():
        print(f"  {label:<14} {found}")
    ratio = medians["without"]["rows/s"] / medians["with counters"]["rows/s"]
    print(f"  rows/s without / with counters: {ratio:.3f} (cost {100 * (ratio - 1):+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
