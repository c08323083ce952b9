from django.urls import path

from training import views

app_name = "exports"

urlpatterns = [
    path("of/<int:snapshot_id>/", views.exports_panel, name="panel"),
    path("of/<int:snapshot_id>/new/", views.export_create_view, name="create"),
    path("<int:export_id>/download/", views.export_download, name="download"),
]
