"""The residency policy on its own: who sleeps, who may wake, with a clock the test moves."""

from __future__ import annotations

import pytest

from arenastack.residency.policy import (
    ASLEEP,
    AWAKE,
    FAILED,
    SLEEPING,
    STARTING,
    WAKING,
    Decision,
    Policy,
    Verdict,
)

READY = Decision(Verdict.READY)
WAIT = Decision(Verdict.WAIT)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    awake: str = "", asleep: str = "", gpu1: str = "", per_gpu: int = 2
) -> tuple[Policy, Clock]:
    """Models named by single letters: `awake` and `asleep` on GPU 0, `gpu1` asleep on GPU 1."""
    clock = Clock()
    gpus = {name: "0" for name in awake + asleep} | {name: "1" for name in gpu1}
    policy = Policy(gpus, awake_per_gpu=per_gpu, failed_backoff_s=30, clock=clock)
    for name in gpus:
        policy.seen(name, sleeping=name not in awake)
    return policy, clock


def ask(policy: Policy, name: str) -> Decision:
    policy.arrive(name)
    return policy.admit(name)


def use(policy: Policy, clock: Clock, name: str, at: float) -> None:
    """A whole request for `name` at time `at`."""
    clock.now = at
    assert ask(policy, name) == READY
    policy.finish(name)


def state(policy: Policy, name: str) -> str:
    return policy.models[name].state


def test_an_awake_model_is_ready_and_its_request_counted_in_flight() -> None:
    policy, clock = make(awake="a")
    assert ask(policy, "a") == READY
    assert (policy.models["a"].in_flight, policy.models["a"].waiting) == (1, 0)
    clock.now += 5
    policy.finish("a")
    assert (policy.models["a"].in_flight, policy.models["a"].last_used) == (0, clock.now)


def test_a_sleeping_model_wakes_into_a_free_slot_once_whatever_the_requests() -> None:
    policy, _ = make(awake="a", asleep="b")
    assert ask(policy, "b") == Decision(Verdict.WAIT, wake="b")
    assert state(policy, "b") == WAKING
    assert [ask(policy, "b") for _ in range(3)] == [WAIT] * 3  # the wake already under way
    policy.woke("b")
    assert [policy.admit("b") for _ in range(4)] == [READY] * 4
    assert policy.models["b"].in_flight == 4


def test_the_least_recently_used_idle_model_is_put_to_sleep() -> None:
    policy, clock = make(awake="ab", asleep="c")
    use(policy, clock, "b", at=1)
    use(policy, clock, "a", at=2)
    assert ask(policy, "c") == Decision(Verdict.WAIT, sleep="b")
    assert state(policy, "b") == SLEEPING
    assert policy.admit("c") == WAIT  # b still holds its memory until /sleep has answered
    policy.slept("b")
    assert policy.admit("c") == Decision(Verdict.WAIT, wake="c")


def test_a_model_never_used_goes_to_sleep_before_one_used() -> None:
    policy, clock = make(awake="ab", asleep="c")
    use(policy, clock, "a", at=1)
    assert ask(policy, "c").sleep == "b"


def test_a_busy_model_is_never_chosen_even_when_least_recently_used() -> None:
    policy, clock = make(awake="ab", asleep="c")
    use(policy, clock, "b", at=2)
    clock.now = 1
    assert ask(policy, "a") == READY  # a: in flight, and used first
    policy.models["a"].last_used = 0.0
    assert ask(policy, "c").sleep == "b"


def test_when_every_awake_model_is_busy_the_request_waits_until_one_finishes() -> None:
    policy, clock = make(awake="ab", asleep="c")
    assert ask(policy, "a") == READY
    assert ask(policy, "b") == READY
    assert ask(policy, "c") == WAIT
    assert policy.admit("c") == WAIT
    assert "a (awake), b (awake)" in policy.why_waiting("c")
    clock.now += 1
    policy.finish("b")
    assert policy.admit("c") == Decision(Verdict.WAIT, sleep="b")


def test_a_burst_for_one_sleeping_model_puts_one_other_model_to_sleep() -> None:
    policy, _ = make(awake="ab", asleep="c")
    decisions = [ask(policy, "c") for _ in range(5)]
    assert [d.sleep for d in decisions if d.sleep] == ["a"]
    assert state(policy, "b") == AWAKE


def test_two_sleeping_models_asked_for_make_room_twice() -> None:
    policy, _ = make(awake="ab", asleep="cd")
    assert ask(policy, "c").sleep == "a"
    assert ask(policy, "d").sleep == "b"


def test_a_model_just_woken_keeps_its_slot_for_the_requests_that_woke_it() -> None:
    policy, clock = make(awake="a", asleep="bc", per_gpu=2)
    use(policy, clock, "a", at=5)
    assert ask(policy, "b").wake == "b"
    policy.woke("b")  # b's request has not run yet: b is awake, idle, never used
    assert ask(policy, "c").sleep == "a"


def test_a_failed_wake_refuses_at_once_for_the_back_off_and_frees_the_slot() -> None:
    policy, clock = make(awake="", asleep="bc", per_gpu=1)
    assert ask(policy, "b").wake == "b"
    policy.wake_failed("b", "it did not wake: POST /wake_up answered 500")
    refused = policy.admit("b")
    assert refused.verdict is Verdict.FAILED
    assert refused.reason == "it did not wake: POST /wake_up answered 500; next try in 30 s"
    policy.leave("b")
    assert state(policy, "b") == FAILED
    assert ask(policy, "c").wake == "c"  # the slot b would have held

    policy.woke("c")
    assert policy.admit("c") == READY
    policy.finish("c")
    clock.now += 31
    assert ask(policy, "b").sleep == "c"  # back-off over: b is tried again, room is made
    policy.slept("c")
    assert policy.admit("b").wake == "b"


def test_a_failed_sleep_frees_the_slot_too() -> None:
    policy, _ = make(awake="a", asleep="b", per_gpu=1)
    assert ask(policy, "b").sleep == "a"
    policy.sleep_failed("a", "it did not go to sleep: no answer")
    assert policy.admit("b").wake == "b"
    assert ask(policy, "a").verdict is Verdict.FAILED


def test_a_full_gpu_does_not_hold_up_another() -> None:
    policy, _ = make(awake="ab", asleep="", gpu1="x")
    assert ask(policy, "a") == READY
    assert ask(policy, "b") == READY
    assert ask(policy, "x").wake == "x"


def test_a_starting_model_waits_and_says_why() -> None:
    clock = Clock()
    policy = Policy({"a": "0"}, awake_per_gpu=1, failed_backoff_s=30, clock=clock)
    assert state(policy, "a") == STARTING
    assert ask(policy, "a") == WAIT
    assert "/health" in policy.why_waiting("a")
    policy.not_ready("a", "it is healthy, but GET /is_sleeping answered 404")
    assert policy.why_waiting("a") == "it is healthy, but GET /is_sleeping answered 404"
    policy.seen("a", sleeping=False)
    assert policy.admit("a") == READY
    assert policy.models["a"].error == ""


def test_a_request_that_gives_up_stops_asking_for_a_slot() -> None:
    policy, _ = make(awake="ab", asleep="c")
    assert ask(policy, "a") == READY
    assert ask(policy, "b") == READY
    assert ask(policy, "c") == WAIT
    policy.leave("c")
    assert policy.models["c"].waiting == 0
    policy.finish("a")
    assert policy.trim() == []  # nobody wants a's slot now: a stays awake
    assert state(policy, "a") == AWAKE


@pytest.mark.parametrize(("busy", "chosen"), [((), ["s2"]), (("s2",), ["s1"])])
def test_start_up_trim_puts_the_most_recently_healthy_idle_models_to_sleep(
    busy: tuple[str, ...], chosen: list[str]
) -> None:
    clock = Clock()
    policy = Policy({f"s{i}": "0" for i in range(3)}, 2, failed_backoff_s=30, clock=clock)
    for i in range(3):
        clock.now = i
        policy.seen(f"s{i}", sleeping=False)
    for name in busy:
        assert ask(policy, name) == READY
    assert policy.trim() == chosen
    assert policy.trim() == []  # decided once
    assert [state(policy, n) for n in chosen] == [SLEEPING]


def test_trim_leaves_a_gpu_within_its_slots_alone() -> None:
    policy, _ = make(awake="ab", asleep="c")
    assert policy.trim() == []
    assert state(policy, "c") == ASLEEP


def test_start_up_waves_earlier_ones_sleep_once_up_and_the_last_stays_awake() -> None:
    """Waves 0 (a, b) and 1 (c, d) on GPU 0, two awake at most (render/residency.py)."""
    clock = Clock()
    waves = {"a": 0, "b": 0, "c": 1, "d": 1}
    policy = Policy(dict.fromkeys(waves, "0"), 2, failed_backoff_s=30, clock=clock, waves=waves)
    policy.seen("a", sleeping=False)
    assert policy.trim() == ["a"]  # c and d are still to come: a makes room at once
    policy.slept("a")
    policy.seen("b", sleeping=False)
    assert ask(policy, "b") == READY  # a request during start-up is served...
    assert policy.trim() == []  # ...and b is not taken from under it
    policy.finish("b")
    assert policy.trim() == ["b"]
    policy.slept("b")
    policy.seen("c", sleeping=False)
    policy.seen("d", sleeping=False)
    assert policy.trim() == []  # the last wave stays awake
    assert [state(policy, n) for n in "abcd"] == [ASLEEP, ASLEEP, AWAKE, AWAKE]


def test_no_wake_while_a_wave_is_loading_its_weights() -> None:
    """Starting models hold their slots: the memory of a wave that is loading is not free."""
    clock = Clock()
    waves = {"a": 0, "b": 1, "c": 1}
    policy = Policy(dict.fromkeys(waves, "0"), 2, failed_backoff_s=30, clock=clock, waves=waves)
    policy.seen("a", sleeping=True)
    assert ask(policy, "a") == WAIT  # b and c are loading
    assert policy.why_waiting("a") == (
        "GPU 0 has no room (2 awake at most) and the models holding its slots stayed busy: "
        "b (starting), c (starting)"
    )
    policy.seen("b", sleeping=False)
    policy.seen("c", sleeping=False)
    decision = policy.admit("a")
    assert decision.sleep in ("b", "c") and decision.wake is None  # room first, then the wake
