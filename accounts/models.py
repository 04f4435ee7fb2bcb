from __future__ import annotations

import re

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import connections, models

USERNAME_PATTERN = r"^[A-Za-z0-9_.]{3,30}\Z"
PHONE_NUMBER_PATTERN = r"^\+?[0-9]{9,15}\Z"

username_validator = RegexValidator(
    USERNAME_PATTERN,
    "Use 3 to 30 letters, digits, underscores or dots.",
    code="invalid_username",
)
phone_number_validator = RegexValidator(
    PHONE_NUMBER_PATTERN,
    "Use 9 to 15 digits, optionally starting with +.",
    code="invalid_phone_number",
)

# Spaces, dashes, dots and brackets are how people write numbers, not part of them.
_PHONE_NUMBER_SEPARATORS = re.compile(r"[\s\-().]")


def normalize_phone_number(raw: str) -> str:
    return _PHONE_NUMBER_SEPARATORS.sub("", raw or "")


def normalize_email(raw: str) -> str:
    # Mailboxes are case-insensitive in practice; one spelling keeps uniqueness honest.
    return (raw or "").strip().lower()


class ChatUserManager(UserManager):
    def create_user(self, username, email=None, password=None, **extra_fields):
        return super().create_user(username, normalize_email(email), password, **extra_fields)

    def create_superuser(self, username, email=None, password=None, **extra_fields):
        return super().create_superuser(username, normalize_email(email), password, **extra_fields)

    def by_id(self, user_id: int) -> User | None:
        """The user with this id, or None, read by a written-out query: on every authenticated request,
        building the ORM's `get` cost twice as much as running it (measured, docs/benchmarks.md)."""
        if not 0 < user_id < 2**63:
            return None  # no id column holds it (and SQLite refuses the parameter), as the ORM finds nobody
        table = connections[self.db].ops.quote_name(self.model._meta.db_table)
        return next(iter(self.raw(f"SELECT * FROM {table} WHERE id = %s", [user_id])), None)  # noqa: S608


class Theme(models.TextChoices):
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"
    OCEAN = "ocean", "Ocean"
    FOREST = "forest", "Forest"
    SUNSET = "sunset", "Sunset"
    GRAPE = "grape", "Grape"
    CONTRAST = "contrast", "High contrast"


class User(AbstractUser):
    username = models.CharField(
        max_length=30,
        unique=True,
        validators=[username_validator],
        help_text="3 to 30 letters, digits, underscores or dots.",
        error_messages={"unique": "This username is taken."},
    )
    email = models.EmailField(unique=True, error_messages={"unique": "This email is already registered."})
    # Optional in the database so staff accounts made with createsuperuser need none;
    # sign-up asks for it.
    phone_number = models.CharField(
        max_length=16,
        unique=True,
        null=True,
        blank=True,
        validators=[phone_number_validator],
        error_messages={"unique": "This phone number is already registered."},
    )
    avatar = models.ImageField(upload_to="avatars/", blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    theme = models.CharField(max_length=20, choices=Theme.choices, default=Theme.LIGHT)

    REQUIRED_FIELDS = ["email"]

    objects = ChatUserManager()

    class Meta:
        ordering = ["username"]
        permissions = [("ban_user", "Can ban (deactivate) and reactivate people")]

    def __str__(self) -> str:
        return self.username

    def clean(self) -> None:
        # Forms that save users directly (the admin's) get the same spelling rules as sign-up.
        super().clean()
        self.email = normalize_email(self.email)
        self.phone_number = normalize_phone_number(self.phone_number) or None

    @property
    def avatar_url(self) -> str | None:
        return self.avatar.url if self.avatar else None


class Report(models.Model):
    """Someone flags a message or a person for the moderators."""

    class Reason(models.TextChoices):
        SPAM = "spam", "Spam"
        HARASSMENT = "harassment", "Harassment or bullying"
        HATE = "hate", "Hate speech"
        NUDITY = "nudity", "Nudity or sexual content"
        VIOLENCE = "violence", "Violence or threats"
        OTHER = "other", "Something else"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Action(models.TextChoices):
        NONE = "", "None yet"
        MESSAGE_REMOVED = "message_removed", "Message removed"
        USER_BANNED = "user_banned", "User banned"
        DISMISSED = "dismissed", "Dismissed"

    # SET_NULL: the moderation record outlives a deleted account on either side.
    reporter = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="reports_made")
    # "user:{id}" or "message:{id}": one report per reporter and thing, enforced by the database.
    target_key = models.CharField(max_length=80, editable=False)
    reported_user = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="reports_against")
    message_id = models.CharField(max_length=64, blank=True)
    chat_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.TextField(blank=True, max_length=1000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    action_taken = models.CharField(max_length=20, choices=Action.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["reporter", "target_key"], name="one_report_per_thing")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} about {self.target_key}"
