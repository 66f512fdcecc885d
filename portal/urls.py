from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.webhook_list, name="webhooks"),
    path("enter", views.enter, name="enter"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", views.logout, name="logout"),
    path("sites/switch", views.switch_site, name="switch-site"),
    path("events", views.event_catalogue, name="events"),
    path("webhooks/new", views.webhook_new, name="webhook-new"),
    path("webhooks/<wh:webhook_id>", views.webhook_detail, name="webhook"),
    path("webhooks/<wh:webhook_id>/secret", views.webhook_secret, name="webhook-secret"),
    path("webhooks/<wh:webhook_id>/enabled", views.webhook_enabled, name="webhook-enabled"),
    path("webhooks/<wh:webhook_id>/delete", views.webhook_delete, name="webhook-delete"),
    path("webhooks/<wh:webhook_id>/rotate-secret", views.webhook_rotate, name="webhook-rotate"),
    path("webhooks/<wh:webhook_id>/test", views.webhook_test, name="webhook-test"),
    path("webhooks/<wh:webhook_id>/redeliver", views.webhook_redeliver, name="webhook-redeliver"),
    path("deliveries/<dlv:delivery_id>", views.delivery_detail, name="delivery"),
    path("deliveries/<dlv:delivery_id>/outcome", views.delivery_outcome, name="delivery-outcome"),
    path("deliveries/<dlv:delivery_id>/retry", views.delivery_retry, name="delivery-retry"),
]
