"""manage.py monitor_jobs [--interval 60] [--once]

Every interval, sends the jobs whose message was lost and sends again those whose worker died (see
``jobs.monitor``). One monitor is enough for a deployment; two are harmless (the requeue is a conditional
update)."""

import time

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from jobs.monitor import Sweep, jobs_sweep


class Command(BaseCommand):
    help = "Watches for jobs whose worker died and sends them again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between sweeps.")
        parser.add_argument("--once", action="store_true", help="One sweep, then exit.")

    def handle(self, *args, **options) -> None:
        while True:
            close_old_connections()  # a database restart between sweeps leaves no broken connection behind
            try:
                sweep = jobs_sweep()
            except DatabaseError as exc:  # the database is down: try again at the next sweep
                self.stderr.write(f"Could not look at the jobs: {exc}")
                sweep = Sweep()
            for label, ids in (
                ("Sent", sweep.sent),
                ("Restarted (their worker died)", sweep.restarted),
                ("Not sent (the broker is unreachable)", sweep.failed),
            ):
                if ids:
                    self.stdout.write(f"{label}: jobs {', '.join(map(str, ids))}")
            if options["once"]:
                return
            time.sleep(options["interval"])
