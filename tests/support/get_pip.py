"""Stand-in for the pip bootstrap script ansible-test downloads (ci-files.testing.ansible.com/ansible-test/
get-pip-<version>.py, a copy of pypa/get-pip's get-pip.py), which is not reachable from these machines.

Like get-pip.py it installs the pip arguments it is given (`pip==<version>` and friends) with a pip that needs
no download: the wheel bundled with this Python (ensurepip). --no-setuptools / --no-wheel are get-pip's own
options: honoured by not adding those packages. ansible-test runs it as `python get_pip_<v>.py ARGS...`
(through its quiet_pip.py wrapper, which imports this file as __main__).
"""
import ensurepip
import os
import runpy
import sys
import tempfile
from pathlib import Path


def bundled_pip_wheel(tmp):
    """The pip wheel shipped inside ensurepip (its file name varies by Python release)."""
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    wheels = sorted(bundled.glob("pip-*.whl"))
    if not wheels:
        sys.exit("get_pip stand-in: this Python has no bundled pip wheel (ensurepip/_bundled)")
    target = Path(tmp) / wheels[-1].name
    target.write_bytes(wheels[-1].read_bytes())
    return target


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if "--no-setuptools" not in sys.argv[1:] and not any(a.startswith("setuptools") for a in args):
        args.append("setuptools")
    if "--no-wheel" not in sys.argv[1:] and not any(a.startswith("wheel") for a in args):
        args.append("wheel")
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(bundled_pip_wheel(tmp)))
        sys.argv = ["pip", "install", "--upgrade", "--force-reinstall", *args]
        os.environ.setdefault("PIP_NO_INPUT", "1")
        runpy.run_module("pip", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
