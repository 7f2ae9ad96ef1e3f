"""etc/grid/config.xml in the shape omero-py's omero.config writes it: an <icegrid> root, a
__ACTIVE__ <properties> block naming the profile (omero.config.profile) and omero.config.version,
then the profile's <properties> holding <property name=… value=…/>."""
import os
import xml.etree.ElementTree as ET

KEY = "omero.config.version"
VERSION = "5.1.0"
INTERNAL = "__ACTIVE__"
DEFAULT = "omero.config.profile"
IGNORE = (KEY, DEFAULT)


def path(omerodir):
    return os.path.join(omerodir, "etc", "grid", "config.xml")


def _load(omerodir):
    p = path(omerodir)
    if os.path.exists(p):
        root = ET.parse(p).getroot()
    else:
        root = ET.Element("icegrid")
        internal = ET.SubElement(root, "properties", id=INTERNAL)
        ET.SubElement(internal, "property", name=DEFAULT, value="default")
        ET.SubElement(internal, "property", name=KEY, value=VERSION)
        profile = ET.SubElement(root, "properties", id="default")
        ET.SubElement(profile, "property", name=KEY, value=VERSION)
    return root


def _profile(root):
    internal = root.find(f"properties[@id='{INTERNAL}']")
    name = "default"
    for p in internal.findall("property"):
        if p.get("name") == DEFAULT:
            name = p.get("value")
    profile = root.find(f"properties[@id='{name}']")
    if profile is None:
        profile = ET.SubElement(root, "properties", id=name)
        ET.SubElement(profile, "property", name=KEY, value=VERSION)
    return profile


def read(omerodir):
    profile = _profile(_load(omerodir))
    return {p.get("name"): p.get("value") for p in profile.findall("property")}


def write(omerodir, key, value):
    """Sets key to value, or removes it when value is None."""
    root = _load(omerodir)
    profile = _profile(root)
    for p in profile.findall("property"):
        if p.get("name") == key:
            profile.remove(p)
    if value is not None:
        ET.SubElement(profile, "property", name=key, value=value)
    os.makedirs(os.path.dirname(path(omerodir)), exist_ok=True)
    tmp = path(omerodir) + ".tmp"
    ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    os.replace(tmp, path(omerodir))
