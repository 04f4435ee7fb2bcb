from django.db import migrations, models

BATCH = 500


def count_what_is_unread(apps, schema_editor):
    """Each membership's unread messages as the store counts them, once; the services keep them since."""
    from messaging.store import message_store
    from messaging.store.base import InvalidMessageId, UnreadWindow

    store = message_store()

    def readable(position: str) -> str | None:
        # A position left by the other message store counts as nothing read, as the services take it.
        try:
            return position if position and store.order_key(position) else None
        except InvalidMessageId:
            return None

    ChatParticipant = apps.get_model("messaging", "ChatParticipant")
    memberships = list(ChatParticipant.objects.order_by("pk"))
    for start in range(0, len(memberships), BATCH):
        batch = memberships[start : start + BATCH]
        windows = [UnreadWindow(m.chat_id, readable(m.last_read_message_id), m.user_id) for m in batch]
        for membership, unread in zip(batch, store.count_unread(windows), strict=True):
            membership.unread_count = unread
        ChatParticipant.objects.bulk_update(batch, ["unread_count"])


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_chat_moderation_permission")]

    operations = [
        migrations.AddField(
            model_name="chatparticipant",
            name="unread_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(count_what_is_unread, migrations.RunPython.noop),
    ]
