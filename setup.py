"""Ships the language-neutral data folders inside the wheel (as gbpfd/_shared/),
so a non-editable install finds them; gbpfd/resources.py looks there first."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: folder -> the files of it a wheel carries
SHARED = {"isa": ("*.toml",), "host_bridge": ("*.toml",), "quotas": ("*.toml",), "kernels": ("*.cuh", "*.h")}


class BuildPyWithSharedData(build_py):
    def run(self):
        super().run()
        for folder, patterns in SHARED.items():
            for source in sorted(s for pattern in patterns for s in Path(folder).rglob(pattern)):
                target = Path(self.build_lib, "gbpfd", "_shared", source)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithSharedData})
