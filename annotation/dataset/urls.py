from django.urls import path

from annotation.dataset import views

app_name = "dataset"

urlpatterns = [
    path("", views.snapshot_list, name="snapshots"),
    path("freeze/", views.snapshot_freeze, name="freeze"),
    path("<int:snapshot_id>/", views.snapshot_detail, name="snapshot"),
    path("<int:snapshot_id>/compare/", views.snapshot_comparison, name="compare"),
]
