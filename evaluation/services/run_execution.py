"""An evaluation run on a worker: the model answers the queries it has not answered yet, batch by batch.

Each batch's responses are parsed, scored and stored before the next batch starts, so a run that stops (a
cancel, a crash, a lost worker) resumes where it was when it is launched again: the stored responses are never
asked again. Open-ended answers are then scored by the judge model. The run's summary (the accuracy table) is
written at the end; the pages compute the same table from the stored responses while the run is going.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from evaluation.models import BenchmarkImage, BenchmarkQuery, EvaluationResponse, EvaluationRun
from evaluation.parsing import answer_is_correct
from evaluation.reports import run_report
from evaluation.runners.base import GenerationRequest, Runner, runner_open
from evaluation.services.image_files import local_image_path
from evaluation.services.run_options import EvaluationOptions
from evaluation.storable import storable_text
from jobs.models import Job
from jobs.services import job_advance, job_finish, job_log, job_running

# Prompts handed to vLLM at once: it schedules them itself, so bigger is faster, but each batch is stored
# before the next, so a stop loses at most one batch.
VLLM_BATCH = 256


def run_queries(run: EvaluationRun, options: EvaluationOptions):
    """The queries the run asks: its benchmarks' queries of the chosen types, the first ``query_limit`` of each
    type per benchmark (in the benchmark's seeded order)."""
    if not options.query_limit:  # every query: one filter, not lists of ids
        return BenchmarkQuery.objects.filter(
            benchmark__in=run.benchmarks.all(), question_type__in=options.question_types
        ).order_by("benchmark_id", "number")
    selected = Q(pk__in=[])
    for benchmark in run.benchmarks.all():
        for question_type in options.question_types:
            numbers = BenchmarkQuery.objects.filter(
                benchmark=benchmark, question_type=question_type
            ).order_by("number")
            if options.query_limit:
                numbers = numbers[: options.query_limit]
            selected |= Q(pk__in=list(numbers.values_list("pk", flat=True)))
    return BenchmarkQuery.objects.filter(selected).order_by("benchmark_id", "number")


def evaluation_run_execute(*, job: Job, progress: Callable[[int, int], None] | None = None) -> EvaluationRun:
    """Answers the run's remaining queries; ``progress(done, total)`` is called after each stored batch (the
    command line's progress bar)."""
    run = EvaluationRun.objects.select_related("training_run").get(pk=job.parameters["run"])
    options = EvaluationOptions.from_json(run.options)
    queries = run_queries(run, options)
    answered = EvaluationResponse.objects.filter(run=run, query=OuterRef("pk"))
    pending = list(queries.exclude(Exists(answered)).select_related("benchmark"))
    total = queries.count()
    with job_running(job=job, total=total):
        done = total - len(pending)
        model = job.parameters.get("model") or run.model_resolved or run.model
        if pending:
            job_advance(job=job, done=done, message=f"Loading {model} ({run.backend}).")
            job_log(job=job, message=f"Loading {model} with the {run.backend} backend.")
            with _heartbeat_while_loading(job):
                runner = runner_open(options.runner_settings(backend=run.backend, model=model))
            try:
                done = _answer(
                    run, runner, pending, job=job, done=done, total=total, options=options, progress=progress
                )
            finally:
                runner.close()
        elif done:
            job_log(job=job, message=f"All {total} queries were answered before: nothing to generate.")
        _judge_open_answers(run, options, job=job)
        summary = run_report(run).to_json()
        EvaluationRun.objects.filter(pk=run.pk).update(summary=summary)
        for row in summary["rows"]:
            job_log(job=job, message=f"{row['benchmark']}: {_accuracy_line(row)}")
        job_finish(job=job, result=summary, message=f"Answered {total} queries.")
    run.refresh_from_db()
    return run


# Loading a big model (vLLM with tensor parallelism) can take minutes without a progress report; the heartbeat
# goes on meanwhile, so the job isn't taken for one whose worker died (TWIN_JOB_STALE_AFTER_SECONDS).
HEARTBEAT_SECONDS = 30


@contextmanager
def _heartbeat_while_loading(job: Job) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=beat, name=f"heartbeat-job-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _accuracy_line(row: dict) -> str:
    parts = []
    for kind in ("pair", "multi", "total"):
        if row.get(kind) is not None:
            parts.append(f"{kind} {row[kind]:.1f}%")
    if row.get("recognition") is not None:
        parts.append(f"recognition {row['recognition']:.2f}/2, content {row['content']:.2f}/3")
    return ", ".join(parts) or "no answers"


def _batches(queries: Sequence[BenchmarkQuery], size: int):
    for start in range(0, len(queries), size):
        yield queries[start : start + size]


def _answer(
    run: EvaluationRun,
    runner: Runner,
    queries: Sequence[BenchmarkQuery],
    *,
    job: Job,
    done: int,
    total: int,
    options: EvaluationOptions,
    progress: Callable[[int, int], None] | None,
) -> int:
    size = VLLM_BATCH if run.backend == EvaluationRun.Backend.VLLM else options.batch_size
    started = time.monotonic()
    answered_here = 0
    for batch in _batches(queries, size):
        image_ids = {image_id for query in batch for image_id in query.image_ids}
        files = dict(BenchmarkImage.objects.filter(pk__in=image_ids).values_list("pk", "file"))
        requests = [
            GenerationRequest(
                key=str(query.pk),
                prompt=query.question,
                image_paths=tuple(local_image_path(files[image_id]) for image_id in query.image_ids),
            )
            for query in batch
        ]
        results = runner.generate(requests)
        rows = []
        for query, result in zip(batch, results, strict=True):
            if query.question_type == BenchmarkQuery.QuestionType.OPEN:
                parsed, correct = "", None
            else:
                parsed, correct = answer_is_correct(query.question_type, result.text, query.answer)
            rows.append(
                EvaluationResponse(
                    run=run,
                    query=query,
                    text=storable_text(result.text),
                    parsed=parsed,
                    correct=correct,
                    seconds=result.seconds,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                )
            )
        # ignore_conflicts: a duplicate delivery of the job that answered the same query keeps the first answer.
        EvaluationResponse.objects.bulk_create(rows, ignore_conflicts=True)
        done += len(batch)
        answered_here += len(batch)
        pace = answered_here / max(time.monotonic() - started, 1e-9)
        job_advance(
            job=job, done=done, message=f"{done} of {total} queries answered ({pace:.2f} per second)."
        )
    return done


def _judge_open_answers(run: EvaluationRun, options: EvaluationOptions, *, job: Job) -> None:
    """Scores the open-ended answers not scored yet with the judge model (FROW's recognition and content)."""
    unscored = list(
        EvaluationResponse.objects.filter(
            run=run, query__question_type=BenchmarkQuery.QuestionType.OPEN, judge_text=""
        ).select_related("query")
    )
    if not unscored:
        return
    from evaluation.recognition import JudgeItem, responses_judge

    job_advance(job=job, done=job.progress_done, message=f"The judge scores {len(unscored)} open answers.")
    judge = runner_open(options.judge_settings())
    try:
        for batch in _batches(unscored, max(options.batch_size, 16)):
            items = [
                JudgeItem(
                    key=str(response.pk),
                    question=response.query.question,
                    reference_label=response.query.answer,
                    reference_facts=str(response.query.extra.get("reference_facts", "")),
                    response=response.text,
                )
                for response in batch
            ]
            scores = responses_judge(judge, items)
            for response, score in zip(batch, scores, strict=True):
                response.recognition_score = score.recognition
                response.content_score = score.content
                response.judge_text = storable_text(score.reason or "(no reason given)")
            EvaluationResponse.objects.bulk_update(
                batch, ["recognition_score", "content_score", "judge_text"]
            )
            job_advance(job=job, done=job.progress_done)
    finally:
        judge.close()
