"""Ships the language-neutral data folders inside the wheel (as gbpfd/_shared/),
so a non-editable install finds them; gbpfd/resources.py looks there first."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHARED_FOLDERS = ("isa",)


class BuildPyWithSharedData(build_py):
    def run(self):
        super().run()
        for folder in SHARED_FOLDERS:
            target = Path(self.build_lib, "gbpfd", "_shared", folder)
            self.mkpath(str(target))
            for source in sorted(Path(folder).glob("*.toml")):
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithSharedData})
