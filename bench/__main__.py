"""`python -m bench [NAME ...]`: run the named benchmarks (all of them by default)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench import (
    accounting,
    aging,
    api,
    bank_matching,
    clients_import,
    clients_list,
    collections_run,
    custom_fields,
    dashboard,
    filter_pages,
    import_bomb,
    invoice_numbers,
    invoice_pdf,
    invoices_list,
    load,
    messaging,
    messaging_drill,
    migrate,
    pages,
    pay_page,
    projects,
    provision,
    rules,
    sweep,
    tally,
    webhook_storm,
    webhooks,
    worker,
)
from bench.common import bench_environment

BENCHMARKS = {
    "provision": provision.run,
    "migrate": migrate.run,
    "pages": pages.run,
    "worker": worker.run,
    "clients_list": clients_list.run,
    "clients_import": clients_import.run,
    "import_bomb": import_bomb.run,
    "invoice_numbers": invoice_numbers.run,
    "invoice_pdf": invoice_pdf.run,
    "projects": projects.run,
    "messaging_enqueue": messaging.run_enqueue,
    "messaging_throughput": messaging.run_throughput,
    "messaging_rate": messaging.run_rate,
    "messaging_drill": messaging_drill.run,
    "messaging_webhooks": messaging.run_webhooks,
    "collections_run": collections_run.run,
    "aging": aging.run,
    "invoices_list": invoices_list.run,
    "dashboard": dashboard.run,
    "filter_pages": filter_pages.run,
    "sweep": sweep.run,
    "load": load.run,
    "pay_page": pay_page.run,
    "webhook_storm": webhook_storm.run,
    "webhook_fanout": webhooks.run,
    "bank_matching": bank_matching.run,
    "accounting_first_sync": accounting.run_first_sync,
    "accounting_incremental": accounting.run_incremental,
    "accounting_fault_drill": accounting.run_fault_drill,
    "tally_pull": tally.run_pull,
    "tally_push_drill": tally.run_push_drill,
    "api_lists": api.run,
    "rules": rules.run,
    "custom_fields": custom_fields.run,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"one of: {', '.join(BENCHMARKS)} (default: all)"
    )
    names = parser.parse_args(argv).names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    started = time.perf_counter()
    verdicts, crashed = [], []
    with bench_environment() as environment:
        for name in names:
            # One broken benchmark should not hide the figures of the others.
            try:
                verdicts += BENCHMARKS[name](environment)
            except Exception:
                traceback.print_exc()
                crashed.append(name)

    print(f"\n=== summary ({time.perf_counter() - started:.0f} s) ===")
    for verdict in verdicts:
        print(f"  {verdict.line()}")
    for name in crashed:
        print(f"  {name}: CRASHED (traceback above)")
    # A MISS is a finding, not a failure of the run; only a crash is.
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
