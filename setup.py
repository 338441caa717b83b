"""Build hooks: the cffi extension and the corral-monitor, corral-init and
corral-runc (its native front) executables.

setuptools builds `supervisor._corral_native` from native/build_ffi.py; the
build_ext step below also compiles native/monitor.c into
`supervisor/libexec/corral-monitor`, so the monitor ships inside the package.
"""

from __future__ import annotations

import json
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
        # corral-runc's native front: the shim's per-container verbs without a
        # Python start; what it does not serve it execs to this interpreter.
        self._executable(
            "corral-runc", ["native/runc_front.c"], out_dir, {"CORRAL_PYTHON": sys.executable}
        )

    def _executable(
        self, name: str, sources: list[str], out_dir: Path, strings: dict[str, str] | None = None
    ) -> None:
        """`strings`: C string macros (-DNAME="value")."""
        macros = [(k, json.dumps(v)) for k, v in (strings or {}).items()]  # a C literal too
        musl = build_ffi.musl_command(Path(self.build_temp))
        if musl is not None:
            subprocess.run(
                [
                    *musl,
                    *build_ffi.CFLAGS,
                    "-Inative",
                    "-static",
                    *[f"-D{k}={v}" for k, v in macros],
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
                macros=macros,
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
