"""Ships the language-neutral data folders inside the wheel (as gbpfd/_shared/),
so a non-editable install finds them; gbpfd/resources.py looks there first."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHARED_FOLDERS = ("isa", "host_bridge", "quotas")


class BuildPyWithSharedData(build_py):
    def run(self):
        super().run()
        for folder in SHARED_FOLDERS:
            for source in sorted(Path(folder).rglob("*.toml")):
                target = Path(self.build_lib, "gbpfd", "_shared", source)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithSharedData})
