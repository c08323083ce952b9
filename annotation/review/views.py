"""The annotator's workspace: the queue dashboard, the review page and its background endpoints, the keyboard
settings, and for researchers the statistics and the adjudication queue.

The review page keeps a small deck of cards (the held tasks). Decisions, skips and the heartbeat are JSON
endpoints the page's script calls in the background; their answers carry the HTML of any new cards, rendered
from the same partial template as the page.
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotation.models import Image, ReviewDecision, ReviewSkip, ReviewTask
from annotation.review.cards import CARD_RELATED_BY_KIND, cards_build
from annotation.review.decisions import (
    DecisionConflict,
    DecisionRejected,
    UndoRejected,
    review_decision_change,
    review_decision_submit,
    review_decision_undo,
    review_task_adjudicate,
)
from annotation.review.keymaps import keymap_get, keymap_labels, keymap_update
from annotation.review.leases import (
    review_leases_renew,
    review_skips_clear,
    review_task_skip,
    review_tasks_claim,
    review_tasks_replace_decided,
)
from annotation.review.queues import COMMAND_KEYS, KIND_BY_SLUG, QUEUES, queue_definition
from annotation.review.statistics import (
    annotator_figures,
    annotator_figures_for,
    queue_agreement,
    queue_counts,
)
from annotation.services.thumbnails import thumbnail_get_or_create

ViewFunction = Callable[..., HttpResponse]


def reviewer_required(view: ViewFunction) -> ViewFunction:
    """Signed in (else the login page) and allowed to work in the queues (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm("annotation.work_review_queues"):
            raise PermissionDenied("You are not an annotator.")
        return view(request, *args, **kwargs)

    return wrapped


def permission_needed(permission: str) -> Callable[[ViewFunction], ViewFunction]:
    def decorate(view: ViewFunction) -> ViewFunction:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _kind(slug: str) -> str:
    kind = KIND_BY_SLUG.get(slug)
    if kind is None:
        raise Http404("No such queue.")
    return kind


# --- dashboard ---------------------------------------------------------------------------------------------


@reviewer_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "review/dashboard.html", _dashboard_context(request))


@reviewer_required
@require_GET
def dashboard_figures(request: HttpRequest) -> HttpResponse:
    """The live part of the dashboard, polled by htmx."""
    return render(request, "review/_dashboard_figures.html", _dashboard_context(request))


def _dashboard_context(request: HttpRequest) -> dict:
    mine = annotator_figures_for(request.user)
    queues = queue_counts()
    for queue in queues:
        queue.mine = mine.per_queue.get(queue.kind)
    return {
        "queues": queues,
        "mine": mine,
        "can_see_statistics": request.user.has_perm(STATISTICS_PERMISSION),
    }


# --- the review page -----------------------------------------------------------------------------------------


@reviewer_required
@require_GET
@never_cache
def queue_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The review page. Reloading it shows the cards the annotator already holds, in the same order."""
    kind = _kind(slug)
    held = review_tasks_claim(annotator=request.user, kind=kind)
    queue = queue_definition(kind)
    keys = keymap_get(user=request.user, kind=kind)
    labels = keymap_labels(kind=kind)
    context = {
        "queue": queue,
        "slug": slug,
        "cards": cards_build(held),
        "keys": keys,
        "key_help": [(keys[name], labels[name]) for name in keys],
        "review_config": {
            "kind": kind,
            "keys": keys,
            "heartbeatSeconds": settings.REVIEW_HEARTBEAT_SECONDS,
            "idleSeconds": settings.REVIEW_IDLE_SECONDS,
            "urls": {
                "decide": reverse("review:decide", args=[slug]),
                "change": reverse("review:change", args=[slug]),
                "skip": reverse("review:skip", args=[slug]),
                "undo": reverse("review:undo", args=[slug]),
                "heartbeat": reverse("review:heartbeat", args=[slug]),
                "cards": reverse("review:cards", args=[slug]),
            },
            "user": request.user.pk,
        },
        "skipped_count": ReviewSkip.objects.filter(
            annotator=request.user, task__kind=kind, task__status=ReviewTask.Status.OPEN
        ).count(),
    }
    return render(request, "review/queue.html", context)


def _have(request: HttpRequest) -> set[int]:
    raw = request.POST.get("have", request.GET.get("have", ""))
    return {int(part) for part in raw.split(",") if part.strip().isdigit()}


def _deck_update(request: HttpRequest, kind: str, **extra) -> JsonResponse:
    """Tops the annotator's held tasks up and returns the cards the page doesn't have yet."""
    held = review_tasks_claim(annotator=request.user, kind=kind)
    have = _have(request)
    return _deck_json(request, kind, held, [task for task in held if task.pk not in have], **extra)


def _deck_json(
    request: HttpRequest,
    kind: str,
    held: list[ReviewTask],
    new: list[ReviewTask],
    *,
    loaded: bool = False,
    **extra,
) -> JsonResponse:
    html = _cards_html(request, kind, new, loaded=loaded)
    return JsonResponse({"ok": True, "held": [task.pk for task in held], "cards": html, **extra})


def _cards_html(request: HttpRequest, kind: str, tasks: list[ReviewTask], *, loaded: bool = False) -> str:
    """The card partials of ``tasks``, as the review page renders them."""
    if not tasks:
        return ""
    keys = keymap_get(user=request.user, kind=kind)
    return "".join(
        render_to_string("review/_card.html", {"card": card, "keys": keys})
        for card in cards_build(tasks, loaded=loaded)
    )


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"ok": False, "code": code, "message": message}, status=status)


@reviewer_required
@require_POST
def decide(request: HttpRequest, slug: str) -> JsonResponse:
    """Records the answer and claims the next card in one transaction; returns the cards the page lacks."""
    kind = _kind(slug)
    try:
        task_id = int(request.POST["task"])
        submission_key, action = request.POST["key"], request.POST["action"]
    except (KeyError, ValueError):
        return _error("bad_request", "The decision was incomplete; reload the page.", 400)
    answer = {"task_id": task_id, "submission_key": submission_key, "action": action}
    answer["duration_ms"] = _int_or_none(request.POST.get("duration_ms"))
    try:
        try:
            return _answer_and_refill(request, kind, **answer)
        except IntegrityError:
            # Two copies of one answer raced past the task lock; run again: the second finds the first and replays.
            return _answer_and_refill(request, kind, **answer)
    except DecisionRejected as exc:
        # The answer was not recorded, and the page says so on that card; the rest of the deck carries on.
        extra = {"ok": False, "code": exc.code, "message": str(exc), "task": task_id}
        if isinstance(exc, DecisionConflict):
            extra["conflict"] = _conflict_json(request, exc, action)
        response = _deck_update(request, kind, **extra)
        response.status_code = 400 if exc.code == "invalid_action" else 409
        return response


def _answer_and_refill(request: HttpRequest, kind: str, **answer) -> JsonResponse:
    """One transaction: the answer recorded, a task claimed in its place, the new card rendered."""
    with transaction.atomic():
        result = review_decision_submit(annotator=request.user, **answer)
        if not result.replayed:
            held = review_tasks_replace_decided(
                annotator=request.user, kind=kind, related=CARD_RELATED_BY_KIND[kind]
            )
            new = [task for task in held if task.pk not in _have(request)]
            extra = {"decision": result.decision.pk, "replayed": False, "task": answer["task_id"]}
            return _deck_json(request, kind, held, new, loaded=True, **extra)
    # A replay changed nothing: the deck is topped up as after any other request.
    return _deck_update(request, kind, decision=result.decision.pk, replayed=True, task=answer["task_id"])


def _conflict_json(request: HttpRequest, conflict: DecisionConflict, action: str) -> dict:
    """What the page shows on the card: the recorded answer, by whom and when, and the one just given."""
    recorded = conflict.recorded
    queue = queue_definition(recorded.kind)
    recorded_action, given_action = queue.action(recorded.action), queue.action(action)
    return {
        "decision": recorded.pk,
        "action": recorded.action,
        "label": recorded_action.label if recorded_action else recorded.action,
        "by": "you" if recorded.annotator_id == request.user.pk else recorded.annotator.get_username(),
        "mine": recorded.annotator_id == request.user.pk,
        "at": recorded.created_at.isoformat(),
        "can_change": conflict.can_change,
        "given": action,
        "given_label": given_action.label if given_action else action,
    }


@reviewer_required
@require_POST
def change(request: HttpRequest, slug: str) -> JsonResponse:
    """The conflict dialog's "change": replaces the annotator's recorded answer with the one they gave."""
    _kind(slug)
    try:
        task_id, decision_id = int(request.POST["task"]), int(request.POST["decision"])
        action = request.POST["action"]
    except (KeyError, ValueError):
        return _error("bad_request", "The change was incomplete; reload the page.", 400)
    try:
        result = review_decision_change(
            annotator=request.user, task_id=task_id, decision_id=decision_id, action=action
        )
    except DecisionRejected as exc:
        return _error(exc.code, str(exc), 400 if exc.code == "invalid_action" else 409)
    label = queue_definition(result.decision.kind).action(result.decision.action).label
    return JsonResponse(
        {
            "ok": True,
            "task": task_id,
            "decision": result.decision.pk,
            "changed": result.replaced is not None,
            "message": f"Task #{task_id}: your answer is now “{label}”.",
        }
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


@reviewer_required
@require_POST
def skip(request: HttpRequest, slug: str) -> JsonResponse:
    kind = _kind(slug)
    try:
        task_id = int(request.POST["task"])
    except (KeyError, ValueError):
        return _error("bad_request", "Which task to skip was missing.", 400)
    review_task_skip(annotator=request.user, task_id=task_id)
    return _deck_update(request, kind, skipped=task_id)


@reviewer_required
@require_POST
def undo(request: HttpRequest, slug: str) -> JsonResponse:
    kind = _kind(slug)
    try:
        result = review_decision_undo(annotator=request.user, kind=kind)
    except UndoRejected as exc:
        return _error("cannot_undo", str(exc), 409)
    card_html = _cards_html(request, kind, [result.task]) if result.held_again else ""
    label = queue_definition(kind).action_label(result.decision.action)
    message = f"Undid your answer “{label}” on task #{result.task.pk}."
    if not result.held_again:
        message += " Another annotator holds it now."
    return JsonResponse(
        {
            "ok": True,
            "task": result.task.pk,
            "card": card_html,
            "action": result.decision.action,
            "message": message,
        }
    )


@reviewer_required
@require_POST
def heartbeat(request: HttpRequest, slug: str) -> JsonResponse:
    kind = _kind(slug)
    have = sorted(_have(request))
    renewed = review_leases_renew(annotator=request.user, kind=kind, task_ids=have)
    return JsonResponse({"ok": True, "held": renewed, "lost": sorted(set(have) - set(renewed))})


@reviewer_required
@require_GET
def cards(request: HttpRequest, slug: str) -> JsonResponse:
    """Cards the page lacks, after it dropped some (lost leases) or ran dry."""
    return _deck_update(request, _kind(slug))


@reviewer_required
@require_POST
def skips_clear(request: HttpRequest, slug: str) -> HttpResponseRedirect:
    review_skips_clear(annotator=request.user, kind=_kind(slug))
    return redirect("review:queue", slug=slug)


# --- keyboard settings -----------------------------------------------------------------------------------------


@reviewer_required
def key_settings(request: HttpRequest) -> HttpResponse:
    saved_kind, errors = None, {}
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in QUEUES:
            raise Http404("No such queue.")
        names = list(keymap_get(user=request.user, kind=kind))
        try:
            keymap_update(
                user=request.user, kind=kind, keys={name: request.POST.get(name, "") for name in names}
            )
            saved_kind = kind
        except ValidationError as exc:
            errors[kind] = exc.messages
    sections = []
    for kind, queue in QUEUES.items():
        keys = keymap_get(user=request.user, kind=kind)
        labels = keymap_labels(kind=kind)
        sections.append(
            {
                "kind": kind,
                "title": queue.title,
                "rows": [(name, labels[name], keys[name], name in COMMAND_KEYS) for name in keys],
                "errors": errors.get(kind, []),
                "saved": saved_kind == kind,
            }
        )
    template = "review/_key_section.html" if request.htmx and request.method == "POST" else "review/keys.html"
    if request.htmx and request.method == "POST":
        section = next(s for s in sections if s["kind"] == request.POST["kind"])
        return render(request, template, {"section": section})
    return render(request, template, {"sections": sections})


# --- images --------------------------------------------------------------------------------------------------


@login_required
@require_GET
def image_file(request: HttpRequest, image_id: int, width: int) -> HttpResponse:
    """An image scaled to fit ``width`` (one of a few fixed widths), made on first request and then cached."""
    if not (
        request.user.has_perm("annotation.work_review_queues")
        or request.user.has_perm("annotation.view_image")
    ):
        raise PermissionDenied
    image = get_object_or_404(Image.objects.only("pk", "file", "sha256", "width"), pk=image_id)
    name = thumbnail_get_or_create(image=image, width=width) or image.file.name
    response = FileResponse(default_storage.open(name, "rb"))
    response["Content-Type"] = "image/jpeg" if name.endswith((".jpg", ".jpeg")) else _content_type(name)
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def _content_type(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
        extension, "application/octet-stream"
    )


# --- researchers: statistics and adjudication -----------------------------------------------------------------

STATISTICS_PERMISSION = "annotation.view_review_statistics"
ADJUDICATION_PERMISSION = "annotation.adjudicate_reviewtask"


@permission_needed(STATISTICS_PERMISSION)
@require_GET
def statistics(request: HttpRequest) -> HttpResponse:
    context = {
        "annotators": annotator_figures(),
        "agreement": queue_agreement(),
        "queues": queue_counts(),
        "kinds": [(kind, queue.title) for kind, queue in QUEUES.items()],
    }
    return render(request, "review/statistics.html", context)


@permission_needed(ADJUDICATION_PERMISSION)
@require_GET
def adjudication_list(request: HttpRequest) -> HttpResponse:
    tasks = ReviewTask.objects.filter(status=ReviewTask.Status.NEEDS_ADJUDICATION).order_by(
        "kind", "resolved_at", "id"
    )
    kind = request.GET.get("kind")
    if kind in QUEUES:
        tasks = tasks.filter(kind=kind)
    page = Paginator(tasks, 20).get_page(request.GET.get("page"))
    page_cards = cards_build(list(page.object_list))
    decisions = _decisions_by_task([card.task.pk for card in page_cards])
    items = [{"card": card, "decisions": decisions.get(card.task.pk, [])} for card in page_cards]
    context = {"page": page, "items": items, "kind": kind, "kinds": [(k, q.title) for k, q in QUEUES.items()]}
    return render(request, "review/adjudication.html", context)


def _decisions_by_task(task_ids: list[int]) -> dict[int, list[ReviewDecision]]:
    found: dict[int, list[ReviewDecision]] = {}
    decisions = ReviewDecision.objects.filter(task_id__in=task_ids, undone_at=None).select_related(
        "annotator"
    )
    for decision in decisions.order_by("created_at"):
        decision.label = queue_definition(decision.kind).action_label(decision.action)
        found.setdefault(decision.task_id, []).append(decision)
    return found


@permission_needed(ADJUDICATION_PERMISSION)
@require_POST
def adjudicate(request: HttpRequest, task_id: int) -> HttpResponse:
    try:
        task = review_task_adjudicate(
            researcher=request.user, task_id=task_id, action=request.POST.get("action", "")
        )
        message, ok = f"Task #{task.pk}: {queue_definition(task.kind).verdict_label(task.outcome)}.", True
    except DecisionRejected as exc:
        message, ok = str(exc), False
    except ReviewTask.DoesNotExist:
        raise Http404("No such task.") from None
    if request.htmx:
        return render(request, "review/_adjudicated.html", {"message": message, "ok": ok, "task_id": task_id})
    return redirect(reverse("review:adjudication") + "?" + request.GET.urlencode())
