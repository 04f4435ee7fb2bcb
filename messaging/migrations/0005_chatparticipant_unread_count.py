from django.db import migrations, models


def count_what_is_unread(apps, schema_editor):
    """Each membership's unread messages as the store counts them, once; the services keep them since."""
    from messaging.store import message_store
    from messaging.store.base import UnreadWindow

    ChatParticipant = apps.get_model("messaging", "ChatParticipant")
    memberships = list(ChatParticipant.objects.all())
    windows = [UnreadWindow(m.chat_id, m.last_read_message_id or None, m.user_id) for m in memberships]
    for membership, unread in zip(memberships, message_store().count_unread(windows), strict=True):
        if unread:
            membership.unread_count = unread
            membership.save(update_fields=["unread_count"])


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
