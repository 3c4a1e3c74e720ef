from django.contrib import admin
from django.urls import include, path

from conversations import metrics_views, views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_views.metrics_page, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("", include("conversations.urls")),
]
