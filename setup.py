"""Build hooks: the cffi extension and the corral-monitor and corral-init executables.

setuptools builds `supervisor._corral_native` from native/build_ffi.py; the
build_ext step below also compiles native/monitor.c into
`supervisor/libexec/corral-monitor`, so the monitor ships inside the package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).resolve().parent / "native"))
import build_ffi


class BuildWithMonitor(build_ext):
    def run(self) -> None:
        super().run()
        # Next to the extension: in-place for editable installs, build_lib otherwise.
        ext_path = Path(self.get_ext_fullpath("supervisor._corral_native"))
        out_dir = ext_path.parent / "libexec"
        out_dir.mkdir(parents=True, exist_ok=True)
        # Relative to setup.py, where builds run: setuptools refuses absolute sources.
        self._executable(
            "corral-monitor", [f"native/{s}" for s in build_ffi.MONITOR_SOURCES], out_dir
        )
        # The container's PID 1 for `run --init`, static like the monitor.
        self._executable("corral-init", ["native/init.c"], out_dir)

    def _executable(self, name: str, sources: list[str], out_dir: Path) -> None:
        musl = build_ffi.musl_command(Path(self.build_temp))
        if musl is not None:
            subprocess.run(
                [
                    *musl,
                    *build_ffi.CFLAGS,
                    "-Inative",
                    "-static",
                    "-o",
                    str(out_dir / name),
                    *sources,
                ],
                check=True,
            )
        else:
            objects = self.compiler.compile(
                sources,
                output_dir=self.build_temp,
                include_dirs=["native"],
                extra_postargs=build_ffi.CFLAGS,
            )
            self.compiler.link_executable(
                objects, name, output_dir=str(out_dir), extra_postargs=build_ffi.MONITOR_LDFLAGS
            )
        os.chmod(out_dir / name, 0o755)


setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithMonitor},
)
