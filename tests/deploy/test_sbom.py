"""`make sbom`: one CycloneDX document per image, generated from uv.lock, listing what the image installs (the
runtime dependencies, at their locked versions) and nothing of the development group."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from dunning_kit.services import SERVICES
from tests.deploy.test_runtime_dependencies import DEV_ONLY, closure

REPO = Path(__file__).resolve().parents[2]


def test_make_sbom_lists_each_images_runtime_packages_at_their_locked_versions_and_no_dev_package(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "sbom", f"SBOM_DIR={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    locked = {(p["name"], p["version"]) for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    for service in SERVICES:
        bom = json.loads((tmp_path / f"{service.name}.cdx.json").read_text())
        assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
        assert bom["metadata"]["component"]["name"] == service.name
        listed = {(c["name"], c["version"]) for c in bom["components"]}
        names = {name for name, _ in listed}
        assert listed <= locked, f"{service.name}: versions not from uv.lock: {sorted(listed - locked)}"
        runtime = closure({service.name}, groups=False) - {service.name}
        # Exactly what the image installs: the service's dependency closure in the lock, no dependency group.
        assert names == runtime, f"{service.name}: missing {sorted(runtime - names)}, extra {sorted(names - runtime)}"
        assert not names & DEV_ONLY, f"{service.name}: development packages in the SBOM: {sorted(names & DEV_ONLY)}"
        for component in bom["components"]:
            if component["name"] not in {"dunning-events", "dunning-kit"}:
                assert component["purl"] == f"pkg:pypi/{component['name']}@{component['version']}"
