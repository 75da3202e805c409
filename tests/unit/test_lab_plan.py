"""The lab layout is pure: names and addresses follow from (name, index, clients)."""

import pytest

from kshock.errors import UserError
from kshock.lab.plan import free_index, plan_lab, validate_name
from kshock.lab.scenarios import SCENARIOS, scenario


def test_plan_puts_every_lab_in_its_own_subnet_and_namespaces():
    a, b = plan_lab("alpha", 0, 2), plan_lab("beta", 7, 2)
    assert a.subnet == "198.18.0.0/24" and b.subnet == "198.18.7.0/24"
    assert a.bootstrap == "198.18.0.1:9092"
    assert a.namespaces == ["ksl-alpha-broker", "ksl-alpha-c1", "ksl-alpha-c2"]
    assert [(c.ifname, c.peer_ifname, c.ip) for c in b.clients] == [
        ("eth0", "vc1", "198.18.7.11"), ("eth0", "vc2", "198.18.7.12")]
    # Linux interface names are at most 15 bytes.
    assert all(len(c.peer_ifname) <= 15 for c in plan_lab("x", 0, 200).clients)


def test_hosts_are_found_by_name_or_number():
    plan = plan_lab("lab", 0, 3)
    assert plan.host("c2").ip == plan.host("2").ip == "198.18.0.12"
    assert plan.host("broker").ip == "198.18.0.1"
    with pytest.raises(UserError) as error:
        plan.host("c4")
    assert str(error.value) == "lab lab has no host 'c4' — choose one of: broker, c1, c2, c3"


@pytest.mark.parametrize("clients", [0, 201])
def test_client_count_is_bounded(clients):
    with pytest.raises(UserError, match=r"--clients .* is out of range — use 1 to 200"):
        plan_lab("lab", 0, clients)


def test_free_index_takes_the_lowest_unused():
    assert free_index(set()) == 0
    assert free_index({0, 1, 3}) == 2


def test_every_scenario_names_distinct_client_ids():
    for chosen in SCENARIOS.values():
        ids = [w.client_id for w in chosen.workloads]
        assert len(ids) == len(set(ids)), chosen.name
    with pytest.raises(UserError, match="unknown scenario 'nope' — choose one of: admin, compression"):
        scenario("nope")


@pytest.mark.parametrize("name", ["lab\n", "lab\r\n", "\nlab", "Lab", "1lab", "", "abcdefghijk", "la b", "lab١"])
def test_invalid_lab_names_are_refused(name):
    with pytest.raises(UserError):
        validate_name(name)
    with pytest.raises(UserError):
        plan_lab(name, 0, 2)


@pytest.mark.parametrize("name", ["lab", "l", "abcdefghij", "lab2"])
def test_valid_lab_names_pass(name):
    assert validate_name(name) == name


def test_a_host_number_is_ascii():
    with pytest.raises(UserError):
        plan_lab("lab", 0, 3).host("٣")
