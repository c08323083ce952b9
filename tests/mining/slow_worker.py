"""A real Celery worker process for the worker-kill test, whose embedder sleeps before each batch.

The pause makes "in the middle of a chunk" a wide window, so the test can kill the worker there reliably;
everything else (broker, database, tasks, services) is the production code.

    python -m tests.mining.slow_worker --queues Q1,Q2 --name NAME [--pause SECONDS]
"""

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queues", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--pause", type=float, default=0.0)
    arguments = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from config import celery_app
    from mining.services import embeddings

    if arguments.pause:
        load = embeddings.embedder_get

        class SlowEmbedder:
            def __init__(self, embedder) -> None:
                self.embedder, self.key, self.dim = embedder, embedder.key, embedder.dim

            def embed(self, items, read, **options):
                for batch in self.embedder.embed(items, read, **options):
                    time.sleep(arguments.pause)
                    yield batch

        embeddings.embedder_get = lambda **kwargs: SlowEmbedder(load(**kwargs))

    celery_app.worker_main(
        [
            "worker",
            "--queues",
            arguments.queues,
            "--hostname",
            f"{arguments.name}@%h",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
