from django.urls import path

from . import api

urlpatterns = [
    path("", api.TaxonomyApi.as_view(), name="taxonomy"),
    path("actions/", api.TaxonomyActionApi.as_view(), name="taxonomy-actions"),
    path("history/", api.TaxonomyHistoryApi.as_view(), name="taxonomy-history"),
]
