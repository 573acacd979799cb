"""Workaround for azure.azcollection 3.12.0 + azure-cli-core 2.75.0 (the versions ansible 12.3.0 pins).

azure_rm_common.AzureRMAuth resolves a `cloud_environment` that is a URL with
`azure.cli.core.cloud.get_cloud_from_metadata_endpoint(url)`, a function that exists in msrestazure.azure_cloud
(what the collection imported before) but NOT in azure.cli.core.cloud. Without this shim any custom cloud (Azure
Stack, a sovereign or private ARM endpoint, this sandbox) fails with AttributeError. This adds the missing function,
built on the CLI's own metadata mapper (what `az cloud register --endpoint-resource-manager` uses).
Loaded by Python itself when this folder is on PYTHONPATH; it touches nothing else.
"""

import importlib.abc
import importlib.machinery
import sys


def _get_cloud_from_metadata_endpoint(url, name=None):
    import os

    import requests
    from azure.cli.core import cloud as azure_cloud

    # trust via REQUESTS_CA_BUNDLE; AZURE_CERT_VALIDATION_MODE=ignore skips it, as the collection does for ARM
    verify = os.environ.get("AZURE_CERT_VALIDATION_MODE") != "ignore"
    data = requests.get(url, timeout=30, verify=verify).json()
    if isinstance(data, list):
        data = data[0]
    if name:
        data["name"] = name
    return azure_cloud._arm_to_cli_mapper(data)


class _Patch(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "azure.cli.core.cloud":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        sys.meta_path.insert(0, self)
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            if not hasattr(module, "get_cloud_from_metadata_endpoint"):
                module.get_cloud_from_metadata_endpoint = _get_cloud_from_metadata_endpoint

        loader.exec_module = exec_module
        return spec


import importlib.util  # noqa: E402

sys.meta_path.insert(0, _Patch())
