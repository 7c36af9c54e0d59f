"""The locker core through its Python bindings, against a real lanyard-server: enroll,
badge checkout, undock, dock, check-in; typed errors as exceptions; failing host
capabilities handled. The same API Swift and Kotlin see."""

import os
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

BADGE = "0012345"
ALICE = "Alice Moreau, RN"
HOUR_MS = 3600 * 1000


def make_hosts(ffi):
    """Host capabilities as a Python app would write them."""

    class Presenter(ffi.ScreenPresenter):
        def __init__(self, fail=False):
            self.screens = []
            self.blank_pages = 0
            self.fail = fail
            self.cond = threading.Condition()

        def show_screen(self, screen):
            with self.cond:
                self.screens.append(screen)
                self.cond.notify_all()
            if self.fail:
                raise ffi.HostError.Failed("display is off")

        def open_blank_page(self):
            self.blank_pages += 1

        def wait_for(self, predicate, timeout=15.0):
            """The presenter callback is the signal: wait (bounded) for a screen."""
            with self.cond:
                ok = self.cond.wait_for(
                    lambda: self.screens and predicate(self.screens[-1]), timeout
                )
            assert ok, f"screen never matched; shown: {self.screens[-3:]}"
            return self.screens[-1]

    class Apps(ffi.AppSessions):
        """Confirms most logouts later from another thread, as a real app's logout
        callback would; one app refuses outright."""

        def __init__(self):
            self.requested = []
            self.agent = None

        def log_out(self, app):
            self.requested.append(app.bundle_id)
            if app.bundle_id == "com.example.broken":
                raise ffi.HostError.Failed("the app did not open its logout URL")
            agent = self.agent
            threading.Thread(
                target=lambda: agent.app_logout_finished(app.bundle_id, None)
            ).start()

    class Secrets(ffi.SecretStorage):
        def __init__(self, fail=False):
            self.values = {}
            self.fail = fail

        def get(self, key):
            return self.values.get(key)

        def put(self, key, value):
            if self.fail:
                raise ffi.HostError.Failed("keychain is locked")
            self.values[key] = bytes(value)

        def delete(self, key):
            self.values.pop(key, None)

    class Notifier(ffi.Notifier):
        def __init__(self):
            self.texts = []

        def notify(self, text):
            self.texts.append(text)
            # Not a HostError: arrives in Rust as HostError.Unexpected, still handled.
            raise RuntimeError("notifications are disabled")

    class Clock(ffi.HostClock):
        def __init__(self):
            self.offset_ms = 0

        def now_millis(self):
            return int(time.time() * 1000) + self.offset_ms

    return Presenter, Apps, Secrets, Notifier, Clock


@pytest.fixture(scope="module")
def site(server):
    """A cart, a clinician with a badge, a Check In workflow that logs two apps out,
    and an enrollment token for five phones."""
    server.post("/api/v1/launchpads", {"id": "cart-4west", "name": "4 West cart 1", "ports": 10,
                "department": "4 West", "timezone": "America/Chicago"})
    server.post("/api/v1/users", {"username": "alice", "display_name": ALICE,
                "password": "correct horse battery"})
    server.post("/api/v1/users/alice/badges", {"badge": BADGE})
    wf = server.post("/api/v1/workflows", {
        "name": "Rover Check In", "model": "express_checkout",
        "actions": [{"type": "check_in_device", "launch_blank_page": True, "logout_apps": [
            {"app": "com.epic.rover", "name": "Epic Rover"},
            {"app": "com.example.broken", "name": "Broken App"}]}]})
    server.post("/api/v1/rules", {"name": "Check In Rover", "trigger": {"type": "checked_in"},
                "workflows": [wf["id"]], "enabled": True})
    token = server.post("/api/v1/enrollment-tokens", {"label": "python", "uses": 5,
                        "launchpad_id": "cart-4west", "department": "4 West"})
    return token["link"]


@pytest.fixture
def opened(ffi):
    """Opens agents and shuts each down at the end of the test, so no background thread
    calls into Python while the interpreter exits."""
    agents = []

    def open_agent(*args):
        agent = ffi.LockerAgent(*args)
        agents.append(agent)
        return agent

    yield open_agent
    for agent in agents:
        agent.shutdown()


def details(ffi, n):
    return ffi.DeviceDetails(serial=f"PYTEST{n:06d}", udid=f"00008030-{n:016X}",
                             model="iPhone15,2", os_version="17.4.1", name=f"4W-{n}")


def test_typed_errors_arrive_as_python_exceptions(ffi, server, site, opened):
    Presenter, Apps, Secrets, Notifier, Clock = make_hosts(ffi)
    agent = opened(tempfile.mkdtemp(), Presenter(), Apps(), Secrets(), Notifier(), None)
    assert isinstance(agent.current_screen(), ffi.ScreenModel.ENROLLMENT)
    with pytest.raises(ffi.ApiError.NotEnrolled):
        agent.badge_tapped(BADGE)
    with pytest.raises(ffi.ApiError.InvalidEnrollment) as e:
        agent.enroll_with_link("https://example.org/not-a-link", details(ffi, 1))
    assert "lanyard://enroll" in e.value.reason
    server_url = urllib.parse.parse_qs(urllib.parse.urlparse(site).query)["server"][0]
    bad = "lanyard://enroll?" + urllib.parse.urlencode({"server": server_url, "token": "no-such-token"})
    with pytest.raises(ffi.ApiError.EnrollmentRefused) as e:
        agent.enroll_with_link(bad, details(ffi, 1))
    assert e.value.code and e.value.reason
    with pytest.raises(ffi.ApiError.InvalidEnrollment):
        agent.enroll_with_managed_config({"LanyardServerURL": server_url}, details(ffi, 1))
    with pytest.raises(ffi.ApiError.InvalidInput) as e:
        agent.enroll_with_link(site, ffi.DeviceDetails(os_version="seventeen"))
    assert e.value.field == "os_version"
    assert agent.status().phase == ffi.LockerPhase.UNENROLLED

    # Managed app configuration, as the MDM pushes it, enrolls the phone.
    token = urllib.parse.parse_qs(urllib.parse.urlparse(site).query)["token"][0]
    screen = agent.enroll_with_managed_config(
        {"LanyardServerURL": server_url, "LanyardEnrollmentToken": token}, details(ffi, 1))
    assert isinstance(screen, ffi.ScreenModel.LOCKED)
    assert agent.status().phase == ffi.LockerPhase.CHECKED_IN
    assert server.get(f"/api/v1/devices/{agent.status().device_id}")["serial"] == "PYTEST000001"

    # The emergency PIN from managed app configuration, hashed by the server's CLI.
    with pytest.raises(ffi.ApiError.InvalidInput) as e:
        agent.set_managed_emergency_pin("pbkdf2-sha256$1$c2FsdA$AAAA")
    assert e.value.field == "emergency_pin_hash"
    hashed = subprocess.run([os.environ["LANYARD_SERVER_BIN"], "emergency-pin-hash"],
                            input="482916\n", capture_output=True, text=True, check=True)
    agent.set_managed_emergency_pin(hashed.stdout.strip())
    locked = agent.pin_entered("000000")
    assert isinstance(locked, ffi.ScreenModel.LOCKED) and "Wrong PIN" in locked.notice
    unlocked = agent.pin_entered("482916")
    assert isinstance(unlocked, ffi.ScreenModel.CHECKOUT_PENDING), unlocked
    assert unlocked.display_name == "Emergency access"


def test_a_keychain_failure_is_a_typed_error_and_leaves_the_phone_unenrolled(ffi, site, opened):
    Presenter, Apps, Secrets, Notifier, Clock = make_hosts(ffi)
    agent = opened(tempfile.mkdtemp(), Presenter(), Apps(), Secrets(fail=True),
                            Notifier(), None)
    with pytest.raises(ffi.ApiError.SecretStore) as e:
        agent.enroll_with_link(site, details(ffi, 2))
    assert "keychain is locked" in e.value.reason
    assert agent.status().phase == ffi.LockerPhase.UNENROLLED
    assert isinstance(agent.current_screen(), ffi.ScreenModel.ENROLLMENT)


def test_badge_checkout_undock_dock_check_in(ffi, server, site, opened):
    Presenter, Apps, Secrets, Notifier, Clock = make_hosts(ffi)
    presenter, apps, secrets, notifier, clock = Presenter(), Apps(), Secrets(), Notifier(), Clock()
    data_dir = tempfile.mkdtemp()
    agent = opened(data_dir, presenter, apps, secrets, notifier, clock)
    apps.agent = agent

    screen = agent.enroll_with_link(site, details(ffi, 3))
    assert isinstance(screen, ffi.ScreenModel.LOCKED), screen
    status = agent.status()
    device = status.device_id
    assert status.phase == ffi.LockerPhase.CHECKED_IN and device
    assert set(secrets.values) == {"lanyard.device-credential", "lanyard.server-url"}
    with pytest.raises(ffi.ApiError.AlreadyEnrolled):
        agent.enroll_with_link(site, details(ffi, 3))
    assert server.get(f"/api/v1/devices/{device}")["serial"] == "PYTEST000003"

    sync = agent.start_sync(ffi.SyncSettings(long_poll_secs=2, idle_pause_secs=0))
    assert sync.is_running()
    with pytest.raises(ffi.ApiError.SyncAlreadyRunning):
        agent.start_sync(ffi.SyncSettings())

    agent.docked("cart-4west", 3)
    with pytest.raises(ffi.ApiError.InvalidInput) as e:
        agent.badge_tapped("   ")
    assert e.value.field == "badge"
    with pytest.raises(ffi.ApiError.InvalidInput):
        agent.docked("cart-4west", 0)

    # An unknown badge: refused by the server, with its reason on the locked screen.
    agent.badge_tapped("9999999")
    presenter.wait_for(lambda s: isinstance(s, ffi.ScreenModel.LOCKED) and s.notice
                       and "not recognized" in s.notice)

    # Alice's badge: the answer arrives through the presenter.
    busy = agent.badge_tapped(BADGE)
    assert isinstance(busy, ffi.ScreenModel.LOCKED) and busy.busy
    granted = presenter.wait_for(lambda s: isinstance(s, ffi.ScreenModel.CHECKOUT_PENDING))
    assert granted.display_name == ALICE
    server.until(f"/api/v1/devices/{device}", lambda d: d["status"] == "checkout_pending"
                 and d["device_user"] == "alice")

    out = agent.undocked()
    assert isinstance(out, ffi.ScreenModel.CHECKED_OUT) and out.display_name == ALICE
    assert not out.overdue
    assert agent.status().username == "alice"
    server.until(f"/api/v1/devices/{device}", lambda d: d["status"] == "checked_out")

    # Past the lending period on the host's clock: overdue, and the alert goes to the
    # notifier, whose unexpected exception is counted, not fatal.
    clock.offset_ms = int(13.5 * HOUR_MS)
    late = agent.tick()
    assert isinstance(late, ffi.ScreenModel.CHECKED_OUT) and late.overdue, late
    assert any("overdue" in t for t in notifier.texts), notifier.texts
    status = agent.status()
    assert status.host_errors >= 1 and "notifications are disabled" in status.last_host_error

    # Back in the cart: locked at once, blank page, apps asked to log out; the broken
    # app's refusal counts as a failed logout and the check-in completes.
    docked = agent.docked("cart-4west", 5)
    assert not isinstance(docked, (ffi.ScreenModel.CHECKED_OUT, ffi.ScreenModel.CHECKOUT_PENDING))
    assert presenter.blank_pages == 1
    assert apps.requested == ["com.epic.rover", "com.example.broken"]
    presenter.wait_for(lambda s: isinstance(s, ffi.ScreenModel.LOCKED) and not s.busy)
    assert agent.status().phase == ffi.LockerPhase.CHECKED_IN
    assert agent.status().username is None
    server.until(f"/api/v1/devices/{device}", lambda d: d["status"] == "checked_in"
                 and d["device_user"] is None and d["last_port"] == 5)
    # Every record reached the server.
    deadline = time.monotonic() + 15
    while agent.status().outbox_len and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.status().outbox_len == 0
    assert agent.status().last_sync_error is None

    sync.stop()
    assert not sync.is_running()
    agent.shutdown()
    with pytest.raises(ffi.ApiError.Closed):
        agent.badge_tapped(BADGE)
    with pytest.raises(ffi.ApiError.Closed):
        agent.sync_now()

    # The app restarts: state from the data directory, credential from the secret store.
    again = opened(data_dir, Presenter(fail=True), Apps(), secrets, Notifier(), clock)
    assert again.status().device_id == device
    assert isinstance(again.current_screen(), ffi.ScreenModel.LOCKED)
    assert again.status().host_errors >= 1, "the failing presenter was called and survived"
    assert "display is off" in again.status().last_host_error
    report = again.sync_now()
    assert report.more is False
    again.docked("cart-4west", 6)
    server.until(f"/api/v1/devices/{device}", lambda d: d["last_port"] == 5 or d["last_port"] == 6)
    again.sync_now()
    assert server.get(f"/api/v1/devices/{device}")["last_port"] == 6


def test_versions(ffi):
    assert ffi.protocol_version() >= 1
    assert ffi.library_version().count(".") == 2
