from django.urls import path

from messaging import api

urlpatterns = [
    path("chats", api.ChatListApi.as_view(), name="chats"),
    path("chats/<id:chat_id>/messages", api.ChatMessagesApi.as_view(), name="messages"),
    path("chats/<id:chat_id>/read", api.ChatReadApi.as_view(), name="read"),
]
