from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Friendship(models.Model):
    """One row per pair of people, whatever the direction.

    The pair is stored ordered (`user_low` < `user_high`) under a unique
    constraint, so two friendships between the same people cannot exist, even
    when both ask at the same moment. A rejected, cancelled or ended friendship
    is deleted; the pair's chat stays.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"

    user_low = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_high = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_low", "user_high"], name="one_friendship_per_pair"),
            models.CheckConstraint(condition=Q(user_low__lt=F("user_high")), name="friendship_pair_is_ordered"),
            models.CheckConstraint(
                condition=Q(requester=F("user_low")) | Q(requester=F("user_high")),
                name="friendship_requester_is_in_the_pair",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_low_id} - {self.user_high_id} ({self.status})"

    @property
    def receiver_id(self) -> int:
        return self.user_high_id if self.requester_id == self.user_low_id else self.user_low_id

    def other_id(self, user_id: int) -> int:
        return self.user_high_id if user_id == self.user_low_id else self.user_low_id


class Notification(models.Model):
    class Type(models.TextChoices):
        FRIEND_REQUEST = "friend_request", "Friend request"
        FRIEND_REQUEST_ACCEPTED = "friend_request_accepted", "Friend request accepted"
        FRIEND_REQUEST_REJECTED = "friend_request_rejected", "Friend request rejected"

    receiver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    type = models.CharField(max_length=40, choices=Type.choices)
    content = models.CharField(max_length=255)
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["receiver", "is_read", "-created_at"], name="notification_inbox")]

    def __str__(self) -> str:
        return f"{self.type} for {self.receiver_id}"
