"""pianoeval.progress: log lines off a terminal (counts, ETA, throttled, last line), a tqdm bar on
one."""
import io
import logging

import pytest

from pianoeval.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "pianoeval.progress"]


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (44.6, "45s"), (65, "1m05s"),
                                           (3599, "59m59s"), (7380, "2h03m"), (-3, "0s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_lines_with_counts_and_eta_throttled_then_the_last(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    with Progress("train_audio", 40, "fold models", interval=30, tty=False, clock=clock) as p:
        for _ in range(12):
            clock.t += 65 / 12
            p.update()  # logs once 30 s have passed since the last line
        assert messages(caplog)[0] == "train_audio: 0/40 fold models (0%), 0s elapsed"
        assert len(messages(caplog)) == 3  # start, ~32 s, ~65 s: at most one per 30 s
        assert messages(caplog)[-1] == "train_audio: 12/40 fold models (30%), 1m05s elapsed, " \
                                       "ETA 2m32s"
        for _ in range(28):
            clock.t += 1
            p.update()
    lines = messages(caplog)
    assert lines[-1] == "train_audio: 40/40 fold models (100%), 1m33s elapsed, done"
    assert len(lines) == 4  # the last one logs at once, close adds nothing
    assert all("ETA" in line for line in lines[1:-1])


def test_close_logs_a_count_not_logged_yet(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    p = Progress("train_tiers", 8, "fold scorers", interval=30, tty=False, clock=clock)
    clock.t += 5
    p.update(3)  # throttled: nothing yet
    assert messages(caplog) == ["train_tiers: 0/8 fold scorers (0%), 0s elapsed"]
    clock.t += 1
    p.close()  # stopped early (e.g. an error): the count reached is still logged
    assert messages(caplog)[-1] == "train_tiers: 3/8 fold scorers (38%), 6s elapsed, ETA 10s"
    p.close()
    assert len(messages(caplog)) == 2


def test_empty_total(caplog):
    caplog.set_level(logging.INFO)
    with Progress("x", 0, tty=False, clock=Clock()):
        pass
    assert messages(caplog) == ["x: 0/0 steps, 0s elapsed"]


def test_terminal_gets_a_tqdm_bar_and_no_log_lines(caplog):
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    with Progress("train_tiers", 4, "fold scorers", tty=True, stream=stream) as p:
        for _ in range(4):
            p.update()
    assert "train_tiers" in stream.getvalue() and "4/4" in stream.getvalue()
    assert messages(caplog) == []


def test_not_a_tty_by_default_for_a_file(caplog):
    caplog.set_level(logging.INFO)
    with Progress("x", 1, stream=io.StringIO(), clock=Clock()) as p:
        p.update()
    assert messages(caplog)[-1] == "x: 1/1 steps (100%), 0s elapsed, done"
