"""The release this process runs: the name that lets requests be compared deploy by deploy.

Most platforms already say which code they started, in an environment variable,
so the release usually needs no configuration::

    from wsgimon.recording.release import detect_release

    detect_release()                            # "3f9c2a7d1b4e" on Render, "v42" on Heroku ...
    detect_release(explicit="2024.06.1")        # what the user said wins
    detect_release({"GITHUB_SHA": "3f9c..."})   # any mapping, for tests

The first usable value wins, in this order: the ``explicit`` option,
``WSGIMON_RELEASE``, then :data:`RELEASE_VARIABLES`. A value is stripped of
surrounding whitespace; a blank one passes to the next variable. A full commit
hash (40 or 64 hex digits) is shortened to its first 12, enough to be unique and
short enough to read; ``FLY_IMAGE_REF`` is reduced to the image's tag. A value
longer than :data:`MAX_RELEASE_LENGTH` or holding a control or other unprintable
character is refused: from the user's own settings with a ``ValueError`` (a
typo should be seen at start), from a platform's variable by passing to the next.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

__all__ = ["MAX_RELEASE_LENGTH", "RELEASE_VARIABLES", "detect_release"]

#: Longer values are refused rather than cut: two cut releases could look alike.
MAX_RELEASE_LENGTH = 64

#: Variables read after ``WSGIMON_RELEASE``, first match wins: a name the team chose,
#: then what a platform sets at run time, then commits that builds bake into images,
#: then CI (a process started inside a CI job).
RELEASE_VARIABLES = (
    "SENTRY_RELEASE",  # the team's own release name; wsgimon and Sentry then agree
    "HEROKU_BUILD_COMMIT",  # Heroku dyno metadata (runtime-dyno-build-metadata)
    "HEROKU_SLUG_COMMIT",  # Heroku dyno metadata, the older runtime-dyno-metadata
    "SOURCE_VERSION",  # Heroku builds: the commit being built
    "HEROKU_RELEASE_VERSION",  # Heroku's "v42": container deploys have no commit
    "RENDER_GIT_COMMIT",  # Render
    "RAILWAY_GIT_COMMIT_SHA",  # Railway, deploys from a repository
    "VERCEL_GIT_COMMIT_SHA",  # Vercel
    "FLY_IMAGE_REF",  # Fly.io: registry.fly.io/app:deployment-<id>, its tag is used
    "K_REVISION",  # Cloud Run and Knative: the revision serving
    "GAE_VERSION",  # Google App Engine: the version serving
    "GIT_REV",  # Dokku, git deploys
    "SOURCE_COMMIT",  # Coolify; Docker Hub automated builds
    "CAPROVER_GIT_COMMIT_SHA",  # CapRover, when the Dockerfile keeps it
    "GIT_COMMIT",  # Jenkins; the usual name for a commit baked into an image
    "COMMIT_SHA",  # Google Cloud Build's substitution, usually passed on as this
    "GITHUB_SHA",  # GitHub Actions
    "CI_COMMIT_SHA",  # GitLab CI
    "CIRCLE_SHA1",  # CircleCI
    "BITBUCKET_COMMIT",  # Bitbucket Pipelines
    "BUILDKITE_COMMIT",  # Buildkite
    "CODEBUILD_RESOLVED_SOURCE_VERSION",  # AWS CodeBuild
)

_FULL_HASH = re.compile(r"(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})")
_SHORT_HASH = 12


def detect_release(environ: Mapping[str, str] = os.environ, explicit: str | None = None) -> str | None:
    """The release of this process, or None when nothing names it.

    Raises ``ValueError`` when ``explicit`` or ``WSGIMON_RELEASE`` holds an unusable value.
    """
    for source, value in (("release", explicit), ("WSGIMON_RELEASE", environ.get("WSGIMON_RELEASE"))):
        if value is None or not value.strip():
            continue
        release = _clean(value)
        if release is None:
            raise ValueError(f"{source} must be at most {MAX_RELEASE_LENGTH} printable characters, got {value[:80]!r}")
        return release
    for name in RELEASE_VARIABLES:
        value = environ.get(name)
        if value is None:
            continue
        reduce = _REDUCERS.get(name)
        release = _clean(value if reduce is None else reduce(value.strip()))
        if release is not None:
            return release
    return None


def _clean(value: str | None) -> str | None:
    """The value as a release name, or None when blank or refused."""
    if value is None:
        return None
    value = value.strip()
    if not value or not value.isprintable():
        return None
    if _FULL_HASH.fullmatch(value):
        return value[:_SHORT_HASH].lower()
    if len(value) > MAX_RELEASE_LENGTH:
        return None
    return value


def _image_tag(reference: str) -> str | None:
    """The part of an image reference that changes from deploy to deploy: its tag, else its digest."""
    name = reference.rsplit("/", 1)[-1]
    name, _, digest = name.partition("@")
    _, colon, tag = name.partition(":")
    if colon and tag:
        return tag
    if digest:
        return digest.partition(":")[2] or None
    return None


_REDUCERS: dict[str, Callable[[str], str | None]] = {"FLY_IMAGE_REF": _image_tag}
