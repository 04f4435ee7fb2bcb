from django.db import migrations


def binary_client_id(apps, schema_editor):
    # MySQL's default utf8mb4_unicode_ci collation would make "aB3x" and "Ab3X" one
    # client_id, and a second message would be taken for a resend of the first.
    # SQLite and MongoDB compare them exactly already.
    if schema_editor.connection.vendor != "mysql":
        return
    schema_editor.execute(
        "ALTER TABLE messaging_message MODIFY client_id varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
    )


class Migration(migrations.Migration):
    # MySQL cannot roll DDL back; Django refuses DDL inside a transaction there.
    atomic = False

    dependencies = [("messaging", "0002_message")]

    operations = [migrations.RunPython(binary_client_id, migrations.RunPython.noop)]
