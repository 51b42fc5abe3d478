"""MX routing (RFC 5321 §5.1, RFC 7505) against the test's DNS server."""

from __future__ import annotations

import random

import pytest

from apps.relay.routing import Hop, NoRoute, find_route, is_null_mx, order_mx


def test_hosts_come_in_preference_order():
    records = [(20, "c.test"), (10, "b.test"), (5, "a.test")]
    assert order_mx(records, random.Random(1)) == ["a.test", "b.test", "c.test"]


def test_equal_preferences_are_shuffled_but_stay_behind_better_ones():
    records = [(10, "a.test"), (10, "b.test"), (10, "c.test"), (20, "z.test")]
    orders = {tuple(order_mx(records, random.Random(seed))) for seed in range(30)}
    assert len(orders) > 1
    assert all(
        order[-1] == "z.test" and set(order[:3]) == {"a.test", "b.test", "c.test"}
        for order in orders
    )


def test_a_host_listed_twice_is_tried_once():
    assert order_mx([(10, "a.test."), (20, "A.test")], random.Random(0)) == ["a.test"]


@pytest.mark.parametrize(
    ("records", "null"),
    [([(0, ".")], True), ([(10, "mx.test")], False), ([(0, "."), (10, "mx.test")], False)],
)
def test_a_null_mx_is_the_root_alone(records, null):
    assert is_null_mx(records) is null


def test_each_mx_host_comes_with_its_addresses(zone):
    zone.add("route.test. MX 20 backup.route.test.")
    zone.add("route.test. MX 10 main.route.test.")
    zone.add("main.route.test. A 127.0.0.1")
    zone.add("main.route.test. AAAA ::1")
    zone.add("backup.route.test. A 127.0.0.3")
    assert find_route("route.test", zone.resolver, 2525) == [
        Hop("main.route.test", ("127.0.0.1", "::1"), 2525),
        Hop("backup.route.test", ("127.0.0.3",), 2525),
    ]


def test_an_mx_host_without_address_is_skipped(zone):
    zone.add("route.test. MX 10 ghost.route.test.")
    zone.add("route.test. MX 20 real.route.test.")
    zone.add("real.route.test. A 127.0.0.1")
    assert [h.host for h in find_route("route.test", zone.resolver, 25)] == ["real.route.test"]


def test_without_mx_the_domain_itself_is_the_host(zone):
    zone.add("bare.test. A 127.0.0.1")
    assert find_route("bare.test", zone.resolver, 25) == [Hop("bare.test", ("127.0.0.1",), 25)]


@pytest.mark.parametrize(
    ("records", "kind", "status"),
    [
        (["nullmx.test. MX 0 ."], "permanent", "5.1.10"),
        ([], "permanent", "5.1.2"),
        (["nullmx.test. TXT nothing"], "permanent", "5.1.2"),
        (["nullmx.test. MX 10 nowhere.nullmx.test."], "temporary", "4.4.3"),
    ],
)
def test_when_there_is_nowhere_to_go_the_reason_says_if_it_is_final(zone, records, kind, status):
    for record in records:
        zone.add(record)
    with pytest.raises(NoRoute) as failure:
        find_route("nullmx.test", zone.resolver, 25)
    assert (failure.value.result.kind, failure.value.result.status) == (kind, status)


def test_a_failing_dns_server_is_a_temporary_failure(zone):
    zone.server.servfail("broken.test")
    zone.names.add("broken.test")
    with pytest.raises(NoRoute) as failure:
        find_route("broken.test", zone.resolver, 25)
    assert failure.value.result.kind == "temporary"
