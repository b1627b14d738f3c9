"""The one progress switch: bars honour PAPERLIB_PROGRESS, and run_all hides them only while it runs."""
import os

from paperlib import progress
from paperlib.run_all import progress_bars_off


def test_bars_follow_the_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.enabled()
    assert not progress.bar(range(3)).disable
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv(progress.ENV, off)
        assert not progress.enabled()
        assert progress.bar(range(3)).disable
    monkeypatch.setenv(progress.ENV, "1")
    assert not progress.bar(range(3)).disable
    assert progress.bar(range(3), disable=True).disable      # e.g. DDP ranks other than 0


def test_disabled_bar_still_iterates(monkeypatch):
    monkeypatch.setenv(progress.ENV, "0")
    assert list(progress.bar(range(4))) == [0, 1, 2, 3]


def test_run_all_restores_the_callers_setting(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")
    with progress_bars_off():
        assert os.environ[progress.ENV] == "0"
    assert os.environ[progress.ENV] == "1"
    monkeypatch.delenv(progress.ENV)
    with progress_bars_off():
        assert not progress.enabled()
    assert progress.ENV not in os.environ


def test_run_all_kernels_leave_the_terminal_lines_out_of_the_notebook(tmp_path):
    """The kernels run_all starts do not capture the process's stdout/stderr into the notebook, so the
    progress lines (results.say_in_terminal) reach the terminal only."""
    from paperlib.run_all import _ipc_kernel_manager
    km = _ipc_kernel_manager(str(tmp_path))(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert cmd[-1] == "--IPKernelApp.capture_fd_output=False" and "ipykernel_launcher" in " ".join(cmd)
