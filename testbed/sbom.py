"""A CycloneDX SBOM of the image: its Debian packages and the Python distributions of its virtualenv.

The inventory is read from the image's file system (dpkg's status file, the virtualenv's dist-info);
cyclonedx-python-lib builds the document, serialises it (CycloneDX 1.6 JSON) and validates it against
the schema, so the file is what SBOM tools read. Package URLs follow the purl spec (pkg:deb, pkg:pypi).
"""

from __future__ import annotations

from collections.abc import Mapping

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL


class SbomError(RuntimeError):
    pass


def deb_component(name: str, fields: Mapping[str, str], distro: str) -> Component:
    version = fields.get("Version", "")
    arch = fields.get("Architecture", "")
    qualifiers = {"arch": arch, "distro": distro} if arch else {"distro": distro}
    purl = PackageURL(type="deb", namespace="debian", name=name, version=version, qualifiers=qualifiers)
    return Component(name=name, version=version, type=ComponentType.LIBRARY, purl=purl,
                     bom_ref=purl.to_string(), group="debian")


def pypi_component(name: str, version: str) -> Component:
    purl = PackageURL(type="pypi", name=name.lower().replace("_", "-"), version=version)
    return Component(name=name, version=version, type=ComponentType.LIBRARY, purl=purl, bom_ref=purl.to_string())


def image_bom(ref: str, debs: Mapping[str, Mapping[str, str]], pythons: Mapping[str, str], version: str,
              debian_version: str = "12") -> str:
    """CycloneDX 1.6 JSON for the image `ref`; raises SbomError when the document fails the schema."""
    bom = Bom()
    root = Component(name="aksdns", version=version, type=ComponentType.CONTAINER, bom_ref=ref,
                     description=f"container image {ref}")
    bom.metadata.component = root
    distro = f"debian-{debian_version.split('.')[0]}"
    parts = [deb_component(n, f, distro) for n, f in sorted(debs.items())]
    parts += [pypi_component(n, v) for n, v in sorted(pythons.items(), key=lambda kv: kv[0].lower())]
    for part in parts:
        bom.components.add(part)
    bom.register_dependency(root, parts)
    text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if errors is not None:
        raise SbomError(f"the SBOM fails the CycloneDX 1.6 schema: {errors}")
    return text
