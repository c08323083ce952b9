from django.urls import path

from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("runs/", views.run_list, name="run_list"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/live/", views.run_live, name="run_live"),
    path("runs/<int:run_id>/launch/", views.run_launch, name="run_launch"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/responses/", views.run_responses_page, name="run_responses"),
    path("runs/<int:run_id>/report.csv", views.run_report_csv, name="run_report_csv"),
    path("runs/<int:run_id>/responses.csv", views.run_responses_csv, name="run_responses_csv"),
    path("compare/", views.compare, name="compare"),
    path("scaling/", views.scaling, name="scaling"),
]
