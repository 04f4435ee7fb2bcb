"""Two people asking each other at the same moment end with one friendship.

Runs on whichever database the environment names; CI runs it on MariaDB,
where the requests really do race inside InnoDB.
"""

import threading

import pytest
from django.db import close_old_connections, connection

from friends import services
from friends.models import Friendship
from messaging.models import Chat

pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls):
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("round_", range(5))
def test_crossing_requests_at_the_same_moment_make_exactly_one_friendship(make_user, round_):
    alice, bob = make_user(), make_user()

    outcomes = race(
        lambda: services.send_friend_request(sender=alice, receiver_id=bob.pk),
        lambda: services.send_friend_request(sender=bob, receiver_id=alice.pk),
    )

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    friendship = Friendship.objects.get()
    assert friendship.status == Friendship.Status.ACCEPTED
    assert Chat.objects.count() == 1


def test_the_same_request_sent_twice_at_once_makes_one_request_and_one_conflict(make_user):
    from chat_realtime.errors import ConflictError

    alice, bob = make_user(), make_user()

    outcomes = race(
        lambda: services.send_friend_request(sender=alice, receiver_id=bob.pk),
        lambda: services.send_friend_request(sender=alice, receiver_id=bob.pk),
    )

    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1, outcomes
    assert Friendship.objects.get().status == Friendship.Status.PENDING
