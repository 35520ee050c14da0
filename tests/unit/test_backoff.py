from agnt_jobs.delivery.backoff import backoff_seconds


def test_doubles_from_base_up_to_ceiling() -> None:
    delays = [backoff_seconds(n, base=60, ceiling=3600) for n in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert backoff_seconds(10_000, base=1, ceiling=10) == 10
