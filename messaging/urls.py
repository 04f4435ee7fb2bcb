from django.urls import path

from messaging import views

app_name = "messaging"

urlpatterns = [
    path("chats/<id:chat_id>/", views.home, name="chat"),
    path("chats/<id:chat_id>/messages/", views.history, name="history"),
    path("chats/<id:chat_id>/send", views.send, name="send"),
]
