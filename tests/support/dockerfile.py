"""The Dockerfile's steps, run on this machine where no image can be built: a
recipe reader that stands a directory (``root``) in for the image's filesystem.

It runs what the image would run — every COPY from the build context, every RUN
with the stage's environment and working directory, the final stage's ENV and CMD
— and refuses, loudly, any instruction or absolute path it cannot stand in for,
so a recipe that outgrows it fails its test instead of passing unchecked. What it
cannot check is said where it is skipped: the base image itself, USER (the
command runs as the test's user) and STOPSIGNAL (returned for the caller to send).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The image's directories this reader maps under ``root``; any other absolute path
# in the recipe is refused.
IMAGE_DIRECTORIES = ("/opt/venv", "/src", "/app")
_ABSOLUTE = re.compile(r"(?<![\w.$])/[\w./-]*")


class UnsupportedRecipe(AssertionError):
    """The Dockerfile uses something this reader cannot stand in for."""


@dataclass
class Stage:
    name: str | None
    env: dict[str, str]
    workdir: Path


@dataclass
class Image:
    """The final stage, as ``docker run`` would start it."""

    env: dict[str, str]
    workdir: Path
    cmd: list[str]
    stop_signal: str = "SIGTERM"
    user: str | None = None
    #: Every instruction run, in order.
    log: list[str] = field(default_factory=list)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    result = []
    for entry in joined:
        keyword, _, arguments = entry.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def build(
    dockerfile: Path, context: Path, root: Path, base_env: dict[str, str]
) -> Image:
    """Run the recipe's steps with ``root`` standing in for ``/``; ``base_env``
    is the base image's environment (its PATH must find the image's ``python``)."""

    def rooted(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            path = match.group(0)
            if not any(
                path == top or path.startswith(top + "/") for top in IMAGE_DIRECTORIES
            ):
                raise UnsupportedRecipe(f"{path}: not a directory this check maps")
            return str(root) + path

        return _ABSOLUTE.sub(one, text)

    def expand(value: str, env: dict[str, str]) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)

    stage: Stage | None = None
    stages: dict[str, Stage] = {}
    image = Image(env={}, workdir=root, cmd=[])
    for keyword, arguments in instructions(dockerfile):
        image.log.append(f"{keyword} {arguments}")
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stage = Stage(name=name, env=dict(base_env), workdir=root)
            if name:
                stages[name] = stage
            continue
        if stage is None:
            raise UnsupportedRecipe(f"{keyword} before FROM")
        if keyword == "WORKDIR":
            stage.workdir = Path(rooted(arguments))
            stage.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                stage.env[key] = expand(rooted(value), stage.env)
        elif keyword == "COPY":
            words = arguments.split()
            source_stage = None
            if words[0].startswith("--from="):
                source_stage = words.pop(0).removeprefix("--from=")
            *sources, target = words
            destination = (
                Path(rooted(target))
                if target.startswith("/")
                else (stage.workdir / target)
            )
            for source in sources:
                if source_stage is not None:
                    if source_stage not in stages:
                        raise UnsupportedRecipe(f"COPY --from={source_stage}: no stage")
                    origin = Path(rooted(source))
                else:
                    origin = context / source
                _copy(origin, destination, into=target.endswith("/"))
        elif keyword == "RUN":
            if arguments.startswith("["):
                raise UnsupportedRecipe("RUN in exec form")
            done = subprocess.run(
                ["sh", "-c", rooted(arguments)],
                cwd=stage.workdir,
                env=stage.env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise AssertionError(f"RUN {arguments}: {done.stderr[-2000:]}")
        elif keyword == "CMD":
            image.cmd = [rooted(word) for word in json.loads(arguments)]
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "STOPSIGNAL":
            image.stop_signal = arguments
        else:
            raise UnsupportedRecipe(f"{keyword}: not an instruction this check runs")
    if stage is None:
        raise UnsupportedRecipe("no FROM")
    image.env, image.workdir = stage.env, stage.workdir
    return image


def _copy(origin: Path, destination: Path, *, into: bool) -> None:
    if origin.is_dir():
        if origin.resolve() == destination.resolve():
            return  # the stages share one filesystem here
        shutil.copytree(origin, destination, dirs_exist_ok=True)
        return
    if into or destination.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        destination = destination / origin.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(origin, destination)
