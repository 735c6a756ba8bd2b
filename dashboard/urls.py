from django.contrib.auth import views as auth_views
from django.urls import path

from . import shadow_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True,
                                                         next_page="dashboard:overview"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="dashboard:login"), name="logout"),
    path("testsets/", views.testset_list, name="testsets"),
    path("testsets/<slug:name>/", views.testset_detail, name="testset"),
    path("testsets/<slug:name>/changelog/", views.changelog, name="changelog"),
    path("testsets/<slug:name>/v<int:number>/", views.version_detail, name="version"),
    path("taxonomy/", views.taxonomy, name="taxonomy"),
    path("correlation/", views.correlation, name="correlation"),
    path("taxonomy/actions/", views.taxonomy_action, name="taxonomy-action"),
    path("shadow/", shadow_views.shadow_list, name="shadow"),
    path("shadow/pairs/<int:pk>/", shadow_views.shadow_pair, name="shadow-pair"),
    path("shadow/<path:name>/pairs/", shadow_views.shadow_pairs, name="shadow-pairs"),
    path("shadow/<path:name>/", shadow_views.shadow_release, name="shadow-release"),
]
