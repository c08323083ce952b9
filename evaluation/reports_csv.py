"""The report tables as CSV: one row per (run, benchmark), and one row per response for the raw answers."""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from evaluation.models import EvaluationResponse
from evaluation.reports import RunReport

REPORT_COLUMNS = [
    "run_id",
    "run",
    "benchmark",
    "pair_accuracy",
    "multi_accuracy",
    "total_accuracy",
    "pair_answered",
    "multi_answered",
    "unreadable",
    "open_answered",
    "recognition_mean",
    "content_mean",
    "recognition_accuracy",
]
RESPONSE_COLUMNS = [
    "query_id",
    "benchmark",
    "number",
    "question_type",
    "answer",
    "parsed",
    "correct",
    "recognition_score",
    "content_score",
    "seconds",
    "completion_tokens",
    "response",
]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def reports_csv(reports: Sequence[RunReport]) -> str:
    """Accuracies in percent; a "Mean" row per run averages the benchmarks, as the paper's Table 1."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    for report in reports:
        for row in report.rows:
            writer.writerow(
                [
                    report.run_id,
                    report.run,
                    row.benchmark,
                    _number(row.pair),
                    _number(row.multi),
                    _number(row.total),
                    row.pair_count,
                    row.multi_count,
                    row.unreadable,
                    row.open_count,
                    _number(row.recognition),
                    _number(row.content),
                    _number(row.recognition_accuracy),
                ]
            )
        writer.writerow(
            [report.run_id, report.run, "Mean", _number(report.mean_pair), _number(report.mean_multi)]
            + [_number(report.mean_total), "", "", "", "", "", "", ""]
        )
    return out.getvalue()


def responses_csv_lines(responses: Iterable[EvaluationResponse]) -> Iterator[str]:
    """The raw responses, streamed line by line (a run has thousands)."""
    out = io.StringIO()
    writer = csv.writer(out)

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(RESPONSE_COLUMNS)
    yield flush()
    for response in responses:
        query = response.query
        writer.writerow(
            [
                query.pk,
                query.benchmark.name,
                query.number,
                query.question_type,
                query.answer,
                response.parsed,
                "" if response.correct is None else int(response.correct),
                "" if response.recognition_score is None else response.recognition_score,
                "" if response.content_score is None else response.content_score,
                f"{response.seconds:.3f}",
                "" if response.completion_tokens is None else response.completion_tokens,
                response.text,
            ]
        )
        yield flush()
