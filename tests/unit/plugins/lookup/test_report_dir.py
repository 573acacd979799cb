"""Where the reports go: resolved against the working directory, never inside a collection, writable or an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError
from ansible_collections.workload_identity.aks.plugins.lookup.report_dir import resolve


def test_the_default_is_under_the_working_directory_not_the_playbooks_folder(tmp_path: Path) -> None:
    home, temp = tmp_path / "home", tmp_path / "temp"
    assert resolve("", str(tmp_path / "project"), str(home), str(temp)) == str(
        tmp_path / "project" / "workload-identity-reports"
    )
    assert (tmp_path / "project" / "workload-identity-reports").is_dir()


def test_a_relative_request_is_taken_from_the_working_directory(tmp_path: Path) -> None:
    assert resolve("out/reports", str(tmp_path), "", "") == str(tmp_path / "out" / "reports")
    assert resolve(str(tmp_path / "abs"), "/elsewhere", "", "") == str(tmp_path / "abs")


def test_the_default_falls_back_when_the_working_directory_is_a_collection_or_not_writable(tmp_path: Path) -> None:
    collection = tmp_path / "ansible_collections" / "workload_identity" / "aks"
    collection.mkdir(parents=True)
    home = tmp_path / "ansible-home"
    assert resolve("", str(collection), str(home), str(tmp_path / "t")) == str(home / "workload-identity-reports")
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    # The working directory's default cannot be made (a file is in the way): ANSIBLE_HOME's is used.
    assert resolve("", str(blocked), str(home), "") == str(home / "workload-identity-reports")


def test_a_request_inside_a_collection_or_unwritable_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    inside = tmp_path / "ansible_collections" / "workload_identity" / "aks" / "reports"
    with pytest.raises(AnsibleLookupError, match="workload_identity_report_dir: .* inside an ansible_collections tree"):
        resolve(str(inside), "/", "", "")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(AnsibleLookupError, match="workload_identity_report_dir: .*file/reports: it cannot be created"):
        resolve(str(blocked / "reports"), "/", "", "")
    with pytest.raises(AnsibleLookupError, match="no writable default for the reports"):
        resolve("", str(blocked), str(blocked), str(blocked))
