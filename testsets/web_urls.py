from django.urls import path

from . import views

app_name = "testsets-web"
urlpatterns = [
    path("<slug:name>/v<int:number>/<str:fmt>/", views.export_page, name="export"),
]
