"""The restart policy, as data (Erlang/OTP style)."""

import pytest

from runtime.supervision import (
    BadTransition,
    ChildRecord,
    ChildSpec,
    ChildState,
    Fail,
    Restart,
    RestartPolicy,
    Stop,
    describe_exit,
    start_order,
)


def test_permanent_children_restart_with_growing_delays_until_the_budget_is_spent() -> None:
    policy = RestartPolicy("permanent", restart_max=3, window_s=10, delay_s=0.1)
    decisions = [policy.on_exit(float(t), -9, requested=False) for t in range(4)]
    assert [type(d) for d in decisions] == [Restart, Restart, Restart, Fail]
    assert [d.delay_s for d in decisions[:3]] == [0.1, 0.2, 0.4]
    assert "restart budget exhausted" in decisions[3].reason


def test_the_budget_is_a_sliding_window() -> None:
    policy = RestartPolicy("permanent", restart_max=2, window_s=10, delay_s=0.1)
    assert isinstance(policy.on_exit(0, 1, False), Restart)
    assert isinstance(policy.on_exit(1, 1, False), Restart)
    assert isinstance(policy.on_exit(20, 1, False), Restart)


def test_requested_stops_and_fatal_exits_are_not_restarted() -> None:
    policy = RestartPolicy("permanent")
    assert isinstance(policy.on_exit(0, -9, requested=True), Stop)
    fail = policy.on_exit(0, 65, requested=False)
    assert isinstance(fail, Fail) and "corrupt" in fail.reason


def test_a_full_disk_fails_the_child_at_once_whatever_the_policy() -> None:
    for mode in ("permanent", "transient"):
        policy = RestartPolicy(mode, restart_max=5)
        fail = policy.on_exit(0, 75, requested=False)
        assert isinstance(fail, Fail) and "no space left on device" in fail.reason
        assert policy.total_restarts == 0  # no restart loop against a full disk
    assert describe_exit(75) == "exit code 75 (no space left on device)"
    assert isinstance(RestartPolicy("permanent").on_exit(0, 75, requested=True), Stop)


def test_transient_and_temporary() -> None:
    assert isinstance(RestartPolicy("transient").on_exit(0, 0, False), Stop)
    assert isinstance(RestartPolicy("transient").on_exit(0, 1, False), Restart)
    assert isinstance(RestartPolicy("temporary").on_exit(0, -9, False), Stop)


def test_reset_starts_the_budget_and_the_count_afresh() -> None:
    policy = RestartPolicy("permanent", restart_max=1)
    policy.on_exit(0, 1, False)
    assert isinstance(policy.on_exit(1, 1, False), Fail)
    assert policy.total_restarts == 1
    policy.reset()
    assert policy.total_restarts == 0
    assert isinstance(policy.on_exit(2, 1, False), Restart)


def test_children_start_acceptors_first_and_proposers_last() -> None:
    specs = [ChildSpec(n, role, ()) for n, role in
             [("p1", "proposer"), ("a1", "acceptor"), ("l1", "learner"), ("a2", "acceptor"), ("p2", "proposer")]]
    assert [s.id for s in start_order(specs)] == ["a1", "a2", "l1", "p1", "p2"]


def test_a_child_moves_only_along_the_transitions_of_its_state_machine() -> None:
    child = ChildRecord(ChildSpec("a1", "acceptor", ()), RestartPolicy())
    child.to(ChildState.RUNNING)
    child.to(ChildState.PAUSED, "SIGSTOP")
    child.to(ChildState.RESTARTING, "killed by SIGKILL")
    assert (child.state, child.reason) == (ChildState.RESTARTING, "killed by SIGKILL")
    with pytest.raises(BadTransition):
        child.to(ChildState.PAUSED)  # a process that is not there cannot be paused
    child.to(ChildState.RUNNING)
    child.to(ChildState.STOPPED, "stopped on request")
    with pytest.raises(BadTransition):
        child.to(ChildState.RESTARTING)  # a stopped child is restarted only by an operator
    assert child.state is ChildState.STOPPED


def test_exit_codes_are_said_in_words() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(71).startswith("exit code 71 (crashed on an unexpected error")
    assert describe_exit(0) == "exit code 0"
