"""Rate limits count attempts in Redis windows: several keys (and repeats of one) in one round trip."""

import pytest
from django.test import override_settings

from chat_realtime import shared_redis
from chat_realtime.errors import RateLimited
from chat_realtime.rate_limits import check_rate_limit, count_attempts, refund_attempts, window_key


def refused(answers: list[RateLimited | None]) -> list[bool]:
    return [answer is not None for answer in answers]


@override_settings(RATE_LIMITS={"message": (3, 60)})
def test_a_batch_counts_each_attempt_in_order_and_refuses_only_those_past_the_limit():
    answers = count_attempts("message", ["user:1", "user:2", "user:1", "user:1", "user:1", "user:2"], message="slow")

    assert refused(answers) == [False, False, False, False, True, False]
    assert answers[4].code == "rate_limited"
    assert answers[4].message == "slow"


@override_settings(RATE_LIMITS={"message": (3, 60)})
def test_attempts_of_earlier_calls_count_in_the_same_window():
    first = count_attempts("message", ["user:1", "user:1"], message="slow")
    second = count_attempts("message", ["user:1", "user:1"], message="slow")

    assert refused(first + second) == [False, False, False, True]


@override_settings(RATE_LIMITS={"message": (2, 60)})
def test_a_batch_larger_than_the_limit_in_a_new_window_refuses_the_rest_for_the_whole_window():
    answers = count_attempts("message", ["user:1"] * 4, message="slow")

    assert refused(answers) == [False, False, True, True]
    assert [answer.retry_after for answer in answers[2:]] == [60, 60]
    assert 0 < shared_redis.connection().ttl(window_key("message", "user:1")) <= 60


@override_settings(RATE_LIMITS={"login": (1, 60)})
def test_a_refusal_says_how_long_until_its_window_ends():
    check_rate_limit("login", key="ip:10.0.0.1", message="wait")

    with pytest.raises(RateLimited) as refusal:
        check_rate_limit("login", key="ip:10.0.0.1", message="wait")

    assert 1 <= refusal.value.retry_after <= 60


@override_settings(RATE_LIMITS={"login": (1, 60)})
def test_the_first_attempt_opens_a_window_that_expires():
    check_rate_limit("login", key="ip:10.0.0.1", message="wait")

    assert 0 < shared_redis.connection().ttl(window_key("login", "ip:10.0.0.1")) <= 60


@override_settings(RATE_LIMITS={"login": (1, 60)})
def test_a_window_that_lost_its_expiry_gets_it_back_when_it_refuses():
    redis = shared_redis.connection()
    redis.set(window_key("login", "ip:10.0.0.1"), 5)  # a counter without expiry would refuse for ever

    with pytest.raises(RateLimited) as refusal:
        check_rate_limit("login", key="ip:10.0.0.1", message="wait")

    assert refusal.value.retry_after == 60
    assert 0 < redis.ttl(window_key("login", "ip:10.0.0.1")) <= 60


@override_settings(RATE_LIMITS={"message": None})
def test_a_limit_set_to_off_refuses_nothing_and_counts_nothing():
    answers = count_attempts("message", ["user:1"] * 50, message="slow")

    assert refused(answers) == [False] * 50
    assert not shared_redis.connection().exists(window_key("message", "user:1"))


@override_settings(RATE_LIMITS={"message": (1, 60)})
def test_nothing_to_count_asks_nothing():
    assert count_attempts("message", [], message="slow") == []


@override_settings(RATE_LIMITS={"message": (1, 60)})
def test_when_redis_is_away_every_attempt_is_let_through(redis_down, caplog):
    answers = count_attempts("message", ["user:1"] * 3, message="slow")

    assert refused(answers) == [False, False, False]
    assert "not checked: Redis unavailable" in caplog.text


@override_settings(RATE_LIMITS={"login": (2, 60)})
def test_an_attempt_given_back_frees_its_place_and_none_goes_below_nothing():
    count_attempts("login", ["ip:1", "ip:1"], message="slow")
    refund_attempts("login", ["ip:1", "ip:2"])  # ip:2 never counted

    assert refused(count_attempts("login", ["ip:1", "ip:1"], message="slow")) == [False, True]
    assert shared_redis.connection().get(window_key("login", "ip:2")) is None


@override_settings(RATE_LIMITS={"login": (1, 60)})
def test_when_redis_is_away_giving_back_is_only_logged(redis_down, caplog):
    refund_attempts("login", ["ip:1"])

    assert "attempts not given back" in caplog.text
