"""The release is found where deploys put it, in a documented order, and only ever as a clean short name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgimon.recording.release import MAX_RELEASE_LENGTH, RELEASE_VARIABLES, detect_release

SHA1 = "3F9C2A7D1B4E8F0A6C5D2E1B9A8F7C6D5E4B3A21"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=200)


def test_nothing_to_go_by_is_no_release() -> None:
    assert detect_release({}) is None
    assert detect_release({"PATH": "/usr/bin", "HOME": "/root"}) is None


def test_the_explicit_option_wins_over_every_variable() -> None:
    environ = {"WSGIMON_RELEASE": "env", **{name: name.lower() for name in RELEASE_VARIABLES}}
    assert detect_release(environ, explicit="2024.06.1") == "2024.06.1"
    assert detect_release(environ) == "env"


def test_each_variable_wins_over_the_ones_after_it() -> None:
    for index, name in enumerate(RELEASE_VARIABLES):
        later = {other: f"later-{other.lower()}" for other in RELEASE_VARIABLES[index + 1 :]}
        value = "registry.fly.io/app:v-winner" if name == "FLY_IMAGE_REF" else "v-winner"
        assert detect_release({**later, name: value}) == "v-winner", name


def test_the_order_is_a_name_chosen_by_people_then_platforms_then_ci() -> None:
    assert "WSGIMON_RELEASE" not in RELEASE_VARIABLES
    assert len(set(RELEASE_VARIABLES)) == len(RELEASE_VARIABLES)
    order = RELEASE_VARIABLES.index
    assert order("SENTRY_RELEASE") == 0
    assert order("HEROKU_BUILD_COMMIT") < order("HEROKU_SLUG_COMMIT") < order("HEROKU_RELEASE_VERSION")
    for platform in ("RENDER_GIT_COMMIT", "RAILWAY_GIT_COMMIT_SHA", "VERCEL_GIT_COMMIT_SHA", "K_REVISION"):
        assert order(platform) < order("GIT_COMMIT") < order("GITHUB_SHA") < order("CI_COMMIT_SHA")


def test_values_are_stripped_and_blank_ones_pass_to_the_next() -> None:
    assert detect_release({"RENDER_GIT_COMMIT": "  v1.2 \n"}) == "v1.2"
    assert detect_release({"SENTRY_RELEASE": "   ", "GITHUB_SHA": "abc123"}) == "abc123"
    assert detect_release({"SENTRY_RELEASE": ""}) is None
    assert detect_release({"WSGIMON_RELEASE": " ", "K_REVISION": "web-00042-xyz"}, explicit="") == "web-00042-xyz"
    assert detect_release({}, explicit="  r7  ") == "r7"


def test_full_commit_hashes_are_shortened_to_12_hex_digits() -> None:
    assert detect_release({"GITHUB_SHA": SHA1}) == "3f9c2a7d1b4e"
    assert detect_release({"CI_COMMIT_SHA": SHA256}) == "9f86d081884c"
    assert detect_release({}, explicit=SHA1) == "3f9c2a7d1b4e"
    assert detect_release({"GIT_REV": "3f9c2a7"}) == "3f9c2a7"  # already short: kept
    assert detect_release({"GIT_REV": SHA1[:39]}) == SHA1[:39]  # not a full hash: kept as given


def test_fly_names_the_release_by_its_image_tag() -> None:
    reference = "registry.fly.io/my-app-name:deployment-01H9RK9EYO9PGNBYAKGXSHV0PH"  # Fly's documented form
    assert detect_release({"FLY_IMAGE_REF": reference}) == "deployment-01H9RK9EYO9PGNBYAKGXSHV0PH"
    assert detect_release({"FLY_IMAGE_REF": f"registry.fly.io/app@sha256:{SHA256}"}) == "9f86d081884c"
    assert detect_release({"FLY_IMAGE_REF": "registry.fly.io/app", "GITHUB_SHA": "abc123"}) == "abc123"


def test_platform_values_that_are_too_long_or_unprintable_pass_to_the_next() -> None:
    for bad in ("x" * (MAX_RELEASE_LENGTH + 1), "v1\x00", "v1\nrm -rf", "\x1b[31mred", "v1\u202egnp", "v1\x7f"):
        assert detect_release({"SENTRY_RELEASE": bad, "GITHUB_SHA": "abc123"}) == "abc123", repr(bad)
        assert detect_release({"SENTRY_RELEASE": bad}) is None
    assert detect_release({"SENTRY_RELEASE": "x" * MAX_RELEASE_LENGTH}) == "x" * MAX_RELEASE_LENGTH
    assert detect_release({"SENTRY_RELEASE": "v1.2 (hotfix) ñ"}) == "v1.2 (hotfix) ñ"


@pytest.mark.parametrize("bad", ["x" * (MAX_RELEASE_LENGTH + 1), "v1\x00", "v1\nv2", "\x1b[31mred"])
def test_an_unusable_release_the_user_set_is_an_error_not_a_silent_fallback(bad: str) -> None:
    with pytest.raises(ValueError, match="release"):
        detect_release({"GITHUB_SHA": "abc123"}, explicit=bad)
    with pytest.raises(ValueError, match="WSGIMON_RELEASE"):
        detect_release({"WSGIMON_RELEASE": bad, "GITHUB_SHA": "abc123"})


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WSGIMON_RELEASE", *RELEASE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    assert detect_release() is None
    monkeypatch.setenv("RENDER_GIT_COMMIT", SHA1)
    assert detect_release() == "3f9c2a7d1b4e"
    monkeypatch.setenv("WSGIMON_RELEASE", "canary-3")
    assert detect_release() == "canary-3"


@PROPERTY
@given(value=st.text(), name=st.sampled_from(RELEASE_VARIABLES))
def test_whatever_a_platform_sets_the_release_is_clean_or_absent(value: str, name: str) -> None:
    release = detect_release({name: value})
    assert release is None or _clean(release)


@PROPERTY
@given(value=st.text())
def test_whatever_the_user_sets_is_used_cleanly_or_refused(value: str) -> None:
    try:
        release = detect_release({}, explicit=value)
    except ValueError:
        return
    assert release is None if not value.strip() else release is not None and _clean(release)


def _clean(release: str) -> bool:
    return 0 < len(release) <= MAX_RELEASE_LENGTH and release.isprintable() and release == release.strip()
