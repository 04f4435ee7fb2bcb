"""Events handed to the channel layer after commit (chat_realtime.realtime), on whichever layer is configured."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from chat_realtime import realtime
from chat_realtime.channel_layer import Mailbox


async def attached_member(layer, group: str) -> tuple[str, Mailbox]:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    mailbox = Mailbox()
    layer.attach(channel, mailbox)
    return channel, mailbox


async def waiting(mailbox: Mailbox, *, within: float) -> list[dict]:
    try:
        message, _ = await asyncio.wait_for(mailbox.get(), timeout=within)
    except TimeoutError:
        return []
    return [message]


async def test_an_event_is_not_handed_to_the_connection_it_excludes_and_reaches_the_others():
    layer = get_channel_layer()
    origin, origin_mailbox = await attached_member(layer, "user.77")
    other, other_tab = await attached_member(layer, "user.77")
    event = realtime.to_participant(
        77, 5, on_screen={"type": "new_message"}, elsewhere={"type": "chat_update"}, exclude_channel=origin
    )
    try:
        realtime._hand_over([event])

        assert await waiting(other_tab, within=2) == [event[1]]
        assert await waiting(origin_mailbox, within=0.2) == []
    finally:
        for channel in (origin, other):
            await layer.group_discard("user.77", channel)
