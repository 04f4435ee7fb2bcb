from django.urls import path

from friends import views

app_name = "friends"

urlpatterns = [
    path("friends/", views.friends_page, name="page"),
    path("friends/search/", views.search, name="search"),
    path("friends/<id:user_id>/action", views.friend_action, name="action"),
    path("friends/<id:user_id>/request", views.send_request, name="send_request"),
    path("friends/<id:user_id>/accept", views.accept, name="accept"),
    path("friends/<id:user_id>/reject", views.reject, name="reject"),
    path("friends/<id:user_id>/cancel", views.cancel, name="cancel"),
    path("friends/<id:user_id>/unfriend", views.unfriend, name="unfriend"),
    path("notifications/", views.notifications_page, name="notifications"),
    path("notifications/read-all", views.notifications_read_all, name="notifications_read_all"),
    path("notifications/<id:notification_id>/read", views.notification_read, name="notification_read"),
    path("notifications/<id:notification_id>/delete", views.notification_delete, name="notification_delete"),
]
