from django.urls import path

from training import run_views

app_name = "training"

urlpatterns = [
    path("runs/", run_views.run_list, name="run_list"),
    path("runs/<int:run_id>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/live/", run_views.run_live, name="run_live"),
    path("runs/<int:run_id>/launch/", run_views.run_launch, name="run_launch"),
    path("runs/<int:run_id>/cancel/", run_views.run_cancel, name="run_cancel"),
]
