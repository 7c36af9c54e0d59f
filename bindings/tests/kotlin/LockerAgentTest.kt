// The locker core through its Kotlin bindings (the API a future Android locker would
// use), against a real lanyard-server: enroll, badge checkout, undock, dock, check-in,
// typed errors as exceptions, a failing host capability. Run by scripts/test-bindings.sh;
// exits non-zero on the first failed check.

import org.lanyard.ffi.*
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.concurrent.TimeUnit

fun check(ok: Boolean, what: () -> String) {
    if (!ok) throw AssertionError(what())
}

inline fun <reified E : Throwable> expectThrows(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

/** The admin API with java.net.http; JSON fields are read with a pattern (no library). */
class Admin(val base: String, val token: String) {
    private val http = HttpClient.newHttpClient()

    fun call(method: String, path: String, body: String?): Pair<Int, String> {
        val req = HttpRequest.newBuilder(URI.create(base + path))
            .timeout(Duration.ofSeconds(10))
            .header("Authorization", "Bearer $token")
            .header("Content-Type", "application/json")
            .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
            .build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        return resp.statusCode() to resp.body()
    }

    fun post(path: String, body: String): String {
        val (status, text) = call("POST", path, body)
        check(status < 300) { "POST $path: $status $text" }
        return text
    }

    fun field(json: String, name: String): String? =
        Regex("\"$name\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)

    /** Polls (bounded) until the device's status is `status`: the server has no push
     * channel to a test, so this is the signal. */
    fun untilStatus(device: String, status: String) {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15)
        var last = ""
        while (System.nanoTime() < deadline) {
            last = call("GET", "/api/v1/devices/$device", null).second
            if (field(last, "status") == status) return
            Thread.sleep(50)
        }
        throw AssertionError("device never reached $status: $last")
    }
}

class Presenter : ScreenPresenter {
    private val lock = Object()
    val screens = mutableListOf<ScreenModel>()

    override fun showScreen(screen: ScreenModel) {
        synchronized(lock) {
            screens.add(screen)
            lock.notifyAll()
        }
    }

    override fun openBlankPage() {}

    /** The presenter callback is the signal: waits (bounded) for a matching screen. */
    fun waitFor(what: String, predicate: (ScreenModel) -> Boolean): ScreenModel {
        val deadline = System.currentTimeMillis() + 15_000
        synchronized(lock) {
            while (true) {
                screens.lastOrNull()?.let { if (predicate(it)) return it }
                val left = deadline - System.currentTimeMillis()
                check(left > 0) { "never showed $what; last: ${screens.takeLast(3)}" }
                lock.wait(left)
            }
        }
    }
}

class Apps : AppSessions {
    override fun logOut(app: AppToLogOut) {
        throw HostException.Failed("no apps to log out in this test")
    }
}

class Secrets(private val fail: Boolean = false) : SecretStorage {
    private val values = HashMap<String, ByteArray>()
    override fun get(key: String): ByteArray? = synchronized(values) { values[key] }
    override fun put(key: String, value: ByteArray) {
        if (fail) throw HostException.Failed("keychain is locked")
        synchronized(values) { values[key] = value }
    }
    override fun delete(key: String) {
        synchronized(values) { values.remove(key) }
    }
}

class Notifications : Notifier {
    override fun notify(text: String) {}
}

fun startServer(bin: String): Pair<Process, Admin> {
    val data = Files.createTempDirectory("lanyard-kt-server").toString()
    val create = ProcessBuilder(bin, "token", "create", "--role", "admin", "--data-dir", data)
        .redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val token = create.inputStream.bufferedReader().readText().trim().lines().last().trim()
    check(create.waitFor() == 0) { "token create failed" }
    val server = ProcessBuilder(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data)
        .redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val out = server.inputStream.bufferedReader()
    // The server prints its bound address once it listens: that line is the signal.
    var base: String? = null
    while (base == null) {
        val line = out.readLine() ?: break
        if ("listening on " in line) base = line.substringAfter("listening on ").trim()
    }
    check(base != null) { "server did not start" }
    Thread { out.lines().forEach { } }.apply { isDaemon = true }.start()
    return server to Admin(base!!, token)
}

fun main() {
    val bin = System.getenv("LANYARD_SERVER_BIN") ?: error("LANYARD_SERVER_BIN is not set")
    val (server, admin) = startServer(bin)
    try {
        journey(admin)
    } finally {
        server.destroy()
        server.waitFor(10, TimeUnit.SECONDS)
    }
    println("kotlin binding test: ok")
}

fun journey(admin: Admin) {
    admin.post("/api/v1/users", """{"username": "bob", "display_name": "Bob Okafor, RN"}""")
    admin.post("/api/v1/users/bob/badges", """{"badge": "0077001"}""")
    val link = admin.field(admin.post("/api/v1/enrollment-tokens", """{"label": "kotlin", "uses": 3}"""), "link")
        ?: error("no link")
    check(protocolVersion() >= 1u) { "protocol version" }

    // A Keychain failure is a typed error, and the phone stays unenrolled.
    val broken = LockerAgent(Files.createTempDirectory("lanyard-kt").toString(),
        Presenter(), Apps(), Secrets(fail = true), Notifications(), null)
    val e = expectThrows<ApiException.SecretStore> { broken.enrollWithLink(link, DeviceDetails()) }
    check("keychain is locked" in e.reason) { e.reason }
    check(broken.status().phase == LockerPhase.UNENROLLED) { "still unenrolled" }
    broken.shutdown()

    val presenter = Presenter()
    val agent = LockerAgent(Files.createTempDirectory("lanyard-kt").toString(),
        presenter, Apps(), Secrets(), Notifications(), null)
    check(agent.currentScreen() is ScreenModel.Enrollment) { "enrollment screen first" }
    expectThrows<ApiException.NotEnrolled> { agent.badgeTapped("0077001") }
    expectThrows<ApiException.InvalidEnrollment> { agent.enrollWithLink("https://example.org", DeviceDetails()) }

    val locked = agent.enrollWithLink(link, DeviceDetails(serial = "KOTLIN000001", model = "iPhone15,2", osVersion = "17.4.1"))
    check(locked is ScreenModel.Locked) { "locked after enrolling: $locked" }
    val device = agent.status().deviceId ?: error("no device id")
    expectThrows<ApiException.AlreadyEnrolled> { agent.enrollWithLink(link, DeviceDetails()) }
    val sync = agent.startSync(SyncSettings(longPollSecs = 2u, idlePauseSecs = 0u))
    expectThrows<ApiException.SyncAlreadyRunning> { agent.startSync(SyncSettings(longPollSecs = 2u, idlePauseSecs = 0u)) }

    agent.docked(null, null)
    val invalid = expectThrows<ApiException.InvalidInput> { agent.badgeTapped("") }
    check(invalid.field == "badge") { invalid.field }
    agent.badgeTapped("0077001")
    val granted = presenter.waitFor("checkout pending") { it is ScreenModel.CheckoutPending }
    check((granted as ScreenModel.CheckoutPending).displayName == "Bob Okafor, RN") { "$granted" }
    admin.untilStatus(device, "checkout_pending")

    val out = agent.undocked()
    check(out is ScreenModel.CheckedOut && out.displayName == "Bob Okafor, RN" && !out.overdue) { "$out" }
    admin.untilStatus(device, "checked_out")

    agent.docked(null, null)
    presenter.waitFor("locked") { it is ScreenModel.Locked && !it.busy }
    check(agent.status().phase == LockerPhase.CHECKED_IN) { "${agent.status()}" }
    admin.untilStatus(device, "checked_in")

    sync.stop()
    check(!sync.isRunning()) { "sync stopped" }
    agent.shutdown()
    expectThrows<ApiException.Closed> { agent.tick() }
}
