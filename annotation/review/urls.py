from django.urls import path

from annotation.review import views

app_name = "review"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("figures/", views.dashboard_figures, name="dashboard_figures"),
    path("keys/", views.key_settings, name="keys"),
    path("statistics/", views.statistics, name="statistics"),
    path("adjudication/", views.adjudication_list, name="adjudication"),
    path("adjudication/<int:task_id>/", views.adjudicate, name="adjudicate"),
    path("images/<int:image_id>/<int:width>/", views.image_file, name="image"),
    path("<slug:slug>/", views.queue_page, name="queue"),
    path("<slug:slug>/decide/", views.decide, name="decide"),
    path("<slug:slug>/change/", views.change, name="change"),
    path("<slug:slug>/skip/", views.skip, name="skip"),
    path("<slug:slug>/undo/", views.undo, name="undo"),
    path("<slug:slug>/heartbeat/", views.heartbeat, name="heartbeat"),
    path("<slug:slug>/cards/", views.cards, name="cards"),
    path("<slug:slug>/skips/clear/", views.skips_clear, name="skips_clear"),
]
