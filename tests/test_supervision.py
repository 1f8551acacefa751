"""The restart policy, as data (Erlang/OTP style)."""

from runtime.supervision import Fail, Restart, RestartPolicy, Stop


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


def test_transient_and_temporary() -> None:
    assert isinstance(RestartPolicy("transient").on_exit(0, 0, False), Stop)
    assert isinstance(RestartPolicy("transient").on_exit(0, 1, False), Restart)
    assert isinstance(RestartPolicy("temporary").on_exit(0, -9, False), Stop)


def test_reset_starts_the_budget_afresh() -> None:
    policy = RestartPolicy("permanent", restart_max=1)
    policy.on_exit(0, 1, False)
    assert isinstance(policy.on_exit(1, 1, False), Fail)
    policy.reset()
    assert isinstance(policy.on_exit(2, 1, False), Restart)
