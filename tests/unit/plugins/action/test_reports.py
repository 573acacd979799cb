"""The reports action: every file written whole in one task, on the controller, never a change; bad arguments named."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.workload_identity.aks.plugins.action.reports import ActionModule


def run(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, diff=False)
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="unused"))
    action = ActionModule(
        task=task,
        connection=connection,
        play_context=SimpleNamespace(check_mode=check_mode),
        loader=None,
        templar=None,
        shared_loader_obj=None,
    )
    return dict(action.run(task_vars={}))


def test_every_file_is_written_whole_with_its_mode_in_a_folder_made_for_it(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "nested"
    result = run(
        {
            "dir": str(folder),
            "files": [{"name": "aks.json", "content": "{}\n"}, {"name": "aks.md", "content": "# aks\n"}],
        }
    )
    assert result["changed"] is False
    assert result["written"] == [str(folder / "aks.json"), str(folder / "aks.md")]
    assert (folder / "aks.json").read_text() == "{}\n" and (folder / "aks.md").read_text() == "# aks\n"
    assert stat.S_IMODE(os.stat(folder / "aks.json").st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == ["aks.json", "aks.md"]  # nothing half-written left beside


def test_check_mode_writes_the_same_the_report_is_the_plan(tmp_path: Path) -> None:
    (tmp_path / "aks.plan.json").write_text("old")
    run({"dir": str(tmp_path), "files": [{"name": "aks.plan.json", "content": "new"}]}, check_mode=True)
    assert (tmp_path / "aks.plan.json").read_text() == "new"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"files": []}, "dir: the folder to write the reports in is required"),
        ({"dir": "x", "files": [{"name": "a"}]}, "files: a list of {name, content} (both strings) is required"),
        (
            {"dir": "x", "files": [{"name": "../a", "content": ""}]},
            "files: '../a' must be a file name, without a folder",
        ),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: dict[str, Any], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnsibleActionFail) as refused:
        run(args)
    assert str(refused.value) == message
    assert list(tmp_path.iterdir()) == []
