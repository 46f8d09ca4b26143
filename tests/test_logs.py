"""tqdm bars in a log file: one line per interval and the final state, never glued."""
import io
import re
import subprocess
import sys

from tqdm import tqdm

from pianoeval.logs import TqdmLines


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def counts(lines):
    return [re.search(r"\d+/\d+", line)[0] for line in lines]


def run_bar(stream, clock, n=100, seconds_per_step=1.0, **kw):
    with tqdm(total=n, desc="render", unit="file", file=stream, mininterval=0, miniters=1,
              **kw) as bar:
        for _ in range(n):
            clock.now += seconds_per_step
            bar.update()


def test_redraws_become_one_line_per_interval_and_the_final_state_once():
    out, clock = io.StringIO(), Clock()
    stream = TqdmLines(out, interval=30, clock=clock)
    stream.write("INFO render: 100 jobs\n")
    run_bar(stream, clock)
    stream.write("INFO render: done\n")
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue()
    assert lines[0] == "INFO render: 100 jobs" and lines[-2:] == ["INFO render: done", ""]
    bars = lines[1:-2]
    # the opening redraw, one at t >= 30, 60, 90 s, and the final 100/100
    assert counts(bars) == ["0/100", "30/100", "60/100", "90/100", "100/100"]


def test_a_final_state_written_on_the_interval_is_not_repeated_and_the_next_bar_opens():
    out, clock = io.StringIO(), Clock()
    stream = TqdmLines(out, interval=10, clock=clock)
    run_bar(stream, clock, n=20)   # t = 10 and 20 fall on the interval: 20/20 written then
    run_bar(stream, clock, n=3)
    assert counts(out.getvalue().splitlines()) == ["0/20", "10/20", "20/20", "0/3", "3/3"]


def test_a_bar_that_is_not_left_leaves_no_empty_line():
    out, clock = io.StringIO(), Clock()
    run_bar(TqdmLines(out, interval=1000, clock=clock), clock, n=5, leave=False)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert "0/5" in out.getvalue()


def test_a_stage_logging_to_a_file_gets_lines_not_a_glued_bar(tmp_path):
    code = ("import logging, time\n"
            "from tqdm import tqdm\n"
            "from pianoeval.logs import setup_logging\n"
            "setup_logging(interval=0)\n"
            "logging.getLogger('stage').info('start')\n"
            "for _ in tqdm(range(3), desc='work', mininterval=0, miniters=1): time.sleep(0.01)\n")
    log = tmp_path / "log"
    with log.open("w") as fh:
        subprocess.run([sys.executable, "-c", code], stderr=fh, check=True)
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].endswith("INFO stage: start")
    assert counts(lines[1:]) == ["0/3", "1/3", "2/3", "3/3"]


def test_code_that_writes_to_the_descriptor_or_the_buffer_still_can(tmp_path):
    with (tmp_path / "log").open("w") as fh:
        stream = TqdmLines(fh, interval=30, clock=Clock())
        assert stream.fileno() == fh.fileno() and stream.buffer is fh.buffer
