//! Server schema migrations, one per `PRAGMA user_version` step. Append only.
//!
//! SQL is kept portable where it costs nothing (`ON CONFLICT`, integer milliseconds,
//! no SQLite-only functions in queries) so the PostgreSQL backend can mirror it.

use rusqlite::{Connection, Transaction};

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: tokens, carts, people, devices, their events and commands, policy.
    "CREATE TABLE api_token (
        id          INTEGER PRIMARY KEY,
        token_hash  BLOB    NOT NULL UNIQUE,
        role        TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'auditor')),
        label       TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );
    CREATE TABLE launchpad (
        id          TEXT    PRIMARY KEY,
        name        TEXT    NOT NULL UNIQUE,
        ports       INTEGER NOT NULL CHECK (ports BETWEEN 1 AND 64),
        department  TEXT,
        facility    TEXT,
        manager     TEXT,
        timezone    TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE app_user (
        username      TEXT    PRIMARY KEY,
        display_name  TEXT    NOT NULL,
        email         TEXT,
        groups_json   TEXT    NOT NULL DEFAULT '[]',
        device_limit  INTEGER NOT NULL DEFAULT 1 CHECK (device_limit >= 0),
        password_hash TEXT,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE badge (
        badge_hash  BLOB    PRIMARY KEY,
        username    TEXT    NOT NULL REFERENCES app_user (username) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX badge_user ON badge (username);
    CREATE TABLE enrollment_token (
        token_hash   BLOB    PRIMARY KEY,
        label        TEXT    NOT NULL,
        uses_left    INTEGER,
        expires_at   INTEGER NOT NULL,
        launchpad_id TEXT    REFERENCES launchpad (id) ON DELETE CASCADE,
        department   TEXT,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE device (
        id              TEXT    PRIMARY KEY,
        credential_hash BLOB    NOT NULL UNIQUE,
        serial          TEXT,
        udid            TEXT,
        model           TEXT,
        os_version      TEXT,
        name            TEXT,
        battery         INTEGER,
        status          TEXT    NOT NULL,
        device_home     TEXT,
        device_user     TEXT,
        last_launchpad  TEXT,
        last_port       INTEGER,
        last_contact    INTEGER,
        last_seq        INTEGER NOT NULL DEFAULT 0,
        enrolled_at     INTEGER NOT NULL
    );
    CREATE INDEX device_user_idx ON device (device_user);
    CREATE INDEX device_launchpad_idx ON device (last_launchpad);
    CREATE TABLE device_event (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        record      TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
    CREATE TABLE command (
        id          TEXT    PRIMARY KEY,
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        kind        TEXT    NOT NULL,
        payload     TEXT    NOT NULL,
        signature   TEXT    NOT NULL,
        state       TEXT    NOT NULL
                    CHECK (state IN ('pending', 'delivered', 'acknowledged', 'failed', 'expired')),
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX command_device_state ON command (device_id, state);
    CREATE TABLE policy (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        version     INTEGER NOT NULL,
        body        TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL
    );",
    // v2: cart readers (launchpad credentials, the grant a cart is waiting on) and
    // whether a device is on a charger.
    "ALTER TABLE launchpad ADD COLUMN credential_hash BLOB;
    CREATE UNIQUE INDEX launchpad_credential ON launchpad (credential_hash);
    ALTER TABLE launchpad ADD COLUMN pending_device TEXT;
    ALTER TABLE launchpad ADD COLUMN pending_until INTEGER;
    ALTER TABLE device ADD COLUMN docked INTEGER NOT NULL DEFAULT 0;",
    // v3: the audit log of admin changes.
    "CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        target_kind TEXT    NOT NULL,
        target_id   TEXT    NOT NULL,
        before_json TEXT,
        after_json  TEXT
    );
    CREATE INDEX audit_log_target ON audit_log (target_kind, target_id);",
    // v4: overdue mirrored from the device's compliance reports; lost / retired set by IT.
    "ALTER TABLE device ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE device ADD COLUMN admin_state TEXT
        CHECK (admin_state IS NULL OR admin_state IN ('lost', 'retired'));",
    // v5: custom attributes, typed, on devices and launchpads.
    "CREATE TABLE attribute_def (
        target      TEXT    NOT NULL CHECK (target IN ('device', 'launchpad')),
        name        TEXT    NOT NULL,
        value_type  TEXT    NOT NULL CHECK (value_type IN ('string', 'int', 'bool')),
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (target, name)
    );
    CREATE TABLE attribute_value (
        target      TEXT    NOT NULL,
        entity_id   TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        value_json  TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (target, entity_id, name),
        FOREIGN KEY (target, name) REFERENCES attribute_def (target, name) ON DELETE CASCADE
    );",
    // v6: MDM: sealed UnlockTokens by UDID, and the MDM activity log.
    "CREATE TABLE mdm_token (
        udid          TEXT    PRIMARY KEY,
        sealed_token  BLOB    NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE mdm_activity (
        id            INTEGER PRIMARY KEY,
        udid          TEXT    NOT NULL,
        device_id     TEXT,
        command_uuid  TEXT,
        request_type  TEXT,
        kind          TEXT    NOT NULL,
        detail        TEXT,
        at            INTEGER NOT NULL
    );
    CREATE INDEX mdm_activity_udid ON mdm_activity (udid, id);
    CREATE INDEX mdm_activity_command ON mdm_activity (command_uuid);",
    // v7: where the passcode clearing of each phone stands, for IT's device list.
    "ALTER TABLE device ADD COLUMN passcode TEXT;",
    // v8: the deadline sweep looks up requests by age.
    "CREATE INDEX mdm_activity_kind_at ON mdm_activity (kind, at);",
    // v9: workflows, automation rules, their runs, schedule bookkeeping, email outbox.
    "CREATE TABLE workflow (
        id          TEXT    PRIMARY KEY,
        name_key    TEXT    NOT NULL UNIQUE,
        spec_json   TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE automation_rule (
        id           TEXT    PRIMARY KEY,
        name_key     TEXT    NOT NULL UNIQUE,
        trigger_kind TEXT    NOT NULL,
        position     INTEGER NOT NULL,
        spec_json    TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX automation_rule_order ON automation_rule (trigger_kind, position);
    CREATE TABLE workflow_run (
        id            INTEGER PRIMARY KEY,
        device_id     TEXT    NOT NULL,
        workflow_id   TEXT    NOT NULL,
        rule_id       TEXT,
        origin        TEXT    NOT NULL,
        parent_run    INTEGER,
        actor         TEXT    NOT NULL,
        state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        attempt       INTEGER NOT NULL,
        workflow_json TEXT    NOT NULL,
        steps_json    TEXT    NOT NULL,
        earlier_json  TEXT    NOT NULL DEFAULT '[]',
        error         TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        finished_at   INTEGER
    );
    CREATE INDEX workflow_run_device ON workflow_run (device_id, id);
    CREATE INDEX workflow_run_state ON workflow_run (state, id);
    CREATE TABLE schedule_fired (
        rule_id      TEXT    NOT NULL,
        launchpad_id TEXT    NOT NULL,
        occurrence   INTEGER NOT NULL,
        PRIMARY KEY (rule_id, launchpad_id)
    );
    CREATE TABLE email_outbox (
        id              INTEGER PRIMARY KEY,
        run_id          INTEGER,
        to_json         TEXT    NOT NULL,
        subject         TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        sent_at         INTEGER
    );
    CREATE INDEX email_outbox_due ON email_outbox (state, next_attempt_at);",
    // v10: offline badge hashes (site salt, see docs/security.md) and the offline list
    // last built for each device.
    "ALTER TABLE badge ADD COLUMN offline_hash BLOB;
    ALTER TABLE badge ADD COLUMN offline_iterations INTEGER;
    CREATE TABLE offline_list (
        device_id   TEXT    PRIMARY KEY REFERENCES device (id) ON DELETE CASCADE,
        version     INTEGER NOT NULL,
        digest      BLOB    NOT NULL,
        audit_mark  INTEGER NOT NULL,
        built_at    INTEGER NOT NULL,
        valid_until INTEGER NOT NULL
    );",
    // v11: runs that take the phone out of service (Update iOS, Erase) keep it from
    // being handed out until they finish.
    "ALTER TABLE workflow_run ADD COLUMN holds_device INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX workflow_run_holding ON workflow_run (device_id) WHERE holds_device = 1;",
    // v12: a command the phone refused because a later checkout superseded it (a
    // check-in queued before a tap) is `superseded`, not `failed`. SQLite cannot change a
    // CHECK constraint in place: the table is rebuilt with its rows.
    "CREATE TABLE command_v12 (
        id          TEXT    PRIMARY KEY,
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        kind        TEXT    NOT NULL,
        payload     TEXT    NOT NULL,
        signature   TEXT    NOT NULL,
        state       TEXT    NOT NULL
                    CHECK (state IN ('pending', 'delivered', 'acknowledged', 'failed', 'expired',
                                     'superseded')),
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    INSERT INTO command_v12 (id, device_id, kind, payload, signature, state, created_at,
                             expires_at, updated_at)
        SELECT id, device_id, kind, payload, signature, state, created_at, expires_at,
               updated_at FROM command;
    DROP TABLE command;
    ALTER TABLE command_v12 RENAME TO command;
    CREATE INDEX command_device_state ON command (device_id, state);",
    // v13: the grant lifecycle. A command remembers the phone request it answers (so a
    // request the phone gave up frees its grant), and a device held by a server grant
    // names it until the phone's own records take over (so a grant never picked up
    // frees the phone and the clinician); a cart remembers the grant it waits on. Phones
    // pending today rest on their newest grant.
    "ALTER TABLE command ADD COLUMN request_id TEXT;
    CREATE INDEX command_request ON command (device_id, request_id) WHERE request_id IS NOT NULL;
    ALTER TABLE device ADD COLUMN held_by_grant TEXT;
    ALTER TABLE launchpad ADD COLUMN pending_grant TEXT;
    CREATE INDEX device_held_by_grant ON device (held_by_grant) WHERE held_by_grant IS NOT NULL;
    UPDATE device SET held_by_grant = (
        SELECT c.id FROM command c WHERE c.device_id = device.id AND c.kind = 'grant_checkout'
        ORDER BY c.created_at DESC, c.id DESC LIMIT 1)
    WHERE status = 'checkout_pending';",
    // v14: the transition outbox. A sync writes the status changes it applied in its own
    // transaction; automation rules consume them (and create their runs) in another, so
    // every change triggers exactly once, also across a crash between the two.
    "CREATE TABLE transition_outbox (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        transition  TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
    -- Wrong passwords per username and the lockout they earned: in the database, so every
    -- server process (and a restarted one) applies the same lockout. Rows of usernames
    -- quiet for a day are pruned as new failures arrive.
    CREATE TABLE password_failure (
        username     TEXT    PRIMARY KEY,
        failures     INTEGER NOT NULL CHECK (failures >= 0),
        locked_until INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX password_failure_age ON password_failure (updated_at);
    -- /readyz writes here: a server whose writer died or whose disk is full is not ready.
    CREATE TABLE readiness (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at  INTEGER NOT NULL
    );",
    // v15: a device's status and passcode state are checked by the database as every
    // other state is (SQLite cannot add a CHECK to a table in place: triggers do it).
    "CREATE TRIGGER device_states_insert BEFORE INSERT ON device
     WHEN NEW.status NOT IN ('unenrolled', 'checked_in', 'checkout_pending', 'checked_out',
                             'returning', 'blocked')
       OR (NEW.passcode IS NOT NULL
           AND NEW.passcode NOT IN ('present', 'clearing', 'clear_failed', 'absent'))
     BEGIN SELECT RAISE(ABORT, 'device status or passcode state is not one the server knows'); END;
    CREATE TRIGGER device_states_update BEFORE UPDATE OF status, passcode ON device
     WHEN NEW.status NOT IN ('unenrolled', 'checked_in', 'checkout_pending', 'checked_out',
                             'returning', 'blocked')
       OR (NEW.passcode IS NOT NULL
           AND NEW.passcode NOT IN ('present', 'clearing', 'clear_failed', 'absent'))
     BEGIN SELECT RAISE(ABORT, 'device status or passcode state is not one the server knows'); END;",
    // v16: the trust boundary. A grant command names its grant and user, so a phone's
    // record of a checkout is checked against what the server issued to it (grants made
    // before this version are filled in from their signed payload); what a phone or a
    // cart sends that the server refuses is kept as a security event; a port a cart's
    // hub reported outranks what a phone says.
    "ALTER TABLE command ADD COLUMN grant_id TEXT;
    ALTER TABLE command ADD COLUMN grant_user TEXT;
    UPDATE command SET grant_id = json_extract(payload, '$.payload.grant_id'),
                       grant_user = json_extract(payload, '$.payload.user.username')
     WHERE kind = 'grant_checkout';
    CREATE INDEX command_grant ON command (grant_id) WHERE grant_id IS NOT NULL;
    CREATE TABLE security_event (
        id           INTEGER PRIMARY KEY,
        at           INTEGER NOT NULL,
        device_id    TEXT,
        launchpad_id TEXT,
        kind         TEXT    NOT NULL,
        detail       TEXT    NOT NULL,
        seq          INTEGER
    );
    CREATE INDEX security_event_device ON security_event (device_id, id)
        WHERE device_id IS NOT NULL;
    CREATE INDEX security_event_at ON security_event (at);
    ALTER TABLE device ADD COLUMN located_by_hub INTEGER NOT NULL DEFAULT 0;",
    // v17: MDM identity comes from the MDM. `mdm_identity` keeps what the MDM's
    // Authenticate said (this UDID is this serial number, enrolled at this moment, and
    // which phone record it supersedes: one the MDM had vouched for already, so the
    // phone was enrolled in the MDM again — erased — and that record is a ghost);
    // `device.mdm_udid` is the UDID the MDM vouched for, the only one MDM commands go
    // to, held by one phone at a time. Phones enrolled before this version keep the
    // UDID they enrolled with (the newest phone of each UDID, in Apple's uppercase form).
    "CREATE TABLE mdm_identity (
        udid             TEXT    PRIMARY KEY,
        serial           TEXT,
        authenticated_at INTEGER NOT NULL,
        supersedes       TEXT
    );
    ALTER TABLE device ADD COLUMN mdm_udid TEXT;
    UPDATE device SET mdm_udid = upper(udid)
     WHERE udid IS NOT NULL AND admin_state IS NULL
       AND NOT EXISTS (SELECT 1 FROM device d2
                        WHERE upper(d2.udid) = upper(device.udid) AND d2.admin_state IS NULL
                          AND (d2.enrolled_at > device.enrolled_at
                               OR (d2.enrolled_at = device.enrolled_at AND d2.id > device.id)));
    CREATE UNIQUE INDEX device_mdm_udid ON device (mdm_udid) WHERE mdm_udid IS NOT NULL;
    CREATE INDEX device_udid ON device (udid) WHERE udid IS NOT NULL;",
    // v18: every credential can be listed and revoked. API tokens may expire and record
    // their last use (to the minute); enrollment tokens can be revoked.
    "ALTER TABLE api_token ADD COLUMN expires_at INTEGER;
    ALTER TABLE api_token ADD COLUMN last_used_at INTEGER;
    ALTER TABLE enrollment_token ADD COLUMN revoked_at INTEGER;
    CREATE INDEX security_event_kind ON security_event (device_id, kind, at);",
    // v19: failed attempts per phone and per cart reader (unknown badges, wrong
    // passwords) in a fixed window, so guessing is throttled by every server process.
    "CREATE TABLE attempt_window (
        key          TEXT    PRIMARY KEY,
        window_start INTEGER NOT NULL,
        failures     INTEGER NOT NULL CHECK (failures >= 0)
    );
    CREATE INDEX attempt_window_start ON attempt_window (window_start);",
    // v20: webhook events already taken (by NanoMDM's event id), so a replayed POST is
    // not acted on twice; kept as long as a replay could still pass the time window.
    "CREATE TABLE webhook_event (
        event_id    TEXT    PRIMARY KEY,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX webhook_event_age ON webhook_event (received_at);",
    // v21: retention. An MDM Idle check-in (a phone with nothing to do) is kept as the
    // phone's "last seen by the MDM", not as a row each time; indexes let the pruning job
    // find what is past its retention without a scan.
    "ALTER TABLE device ADD COLUMN mdm_last_seen INTEGER;
    DELETE FROM mdm_activity WHERE kind = 'idle' AND command_uuid IS NULL;
    CREATE INDEX device_event_received ON device_event (received_at);
    CREATE INDEX command_settled ON command (updated_at) WHERE state NOT IN ('pending', 'delivered');
    CREATE INDEX mdm_activity_at ON mdm_activity (at);
    CREATE INDEX workflow_run_finished ON workflow_run (finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX email_outbox_settled ON email_outbox (created_at) WHERE state <> 'pending';",
    // v22: offline badge lists with a salt per phone. A badge keeps a sealed copy of its
    // id (AES-256-GCM under the sealing key in the data directory, bound to its keyed
    // hash), and each phone's entries — PBKDF2 of the id with that phone's salt — are
    // computed once and kept sealed too. The site-salted hashes, which a copy of the
    // database alone let anyone crack, are dropped (the server vacuums after this
    // version, so no free page keeps them); each badge gets its sealed copy again at
    // its next registration or online tap, and every list is rebuilt.
    "ALTER TABLE badge DROP COLUMN offline_hash;
    ALTER TABLE badge DROP COLUMN offline_iterations;
    ALTER TABLE badge ADD COLUMN offline_sealed BLOB;
    CREATE TABLE offline_entry (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        badge_hash  BLOB    NOT NULL REFERENCES badge (badge_hash) ON DELETE CASCADE,
        iterations  INTEGER NOT NULL,
        sealed      BLOB    NOT NULL,
        PRIMARY KEY (device_id, badge_hash)
    ) WITHOUT ROWID;
    CREATE INDEX offline_entry_badge ON offline_entry (badge_hash);
    UPDATE offline_list SET audit_mark = -1;",
    // v23: each MDM command's state, kept by CommandUUID with a precedence arrival order
    // cannot undo (domain::mdm_commands); the activity log keeps everything heard. A
    // phone that left the MDM (its CheckOut) is marked. Commands already logged get the
    // state their log supports, a device's answer outranking what the server assumed.
    // `probe` is the DeviceInformation sent to find out about a command left unanswered
    // (a webhook NanoMDM never resends); `push_failed_at` marks a queued command whose
    // last push failed, to push again. `upgrade_done` remembers one-time rewrites of
    // stored data (sealing secrets an earlier version kept in clear), so a start does not
    // scan the audit log again.
    "CREATE TABLE mdm_command (
        uuid          TEXT    PRIMARY KEY,
        device_id     TEXT,
        udid          TEXT    NOT NULL,
        request_type  TEXT    NOT NULL,
        state         TEXT    NOT NULL CHECK (state IN ('requested', 'uncertain', 'queued', 'not_now',
                          'expired', 'not_queued', 'unknown_enrollment', 'acknowledged', 'error', 'format_error')),
        detail        TEXT,
        requested_at  INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        probe         TEXT,
        push_failed_at INTEGER
    );
    CREATE INDEX mdm_command_probe ON mdm_command (probe) WHERE probe IS NOT NULL;
    CREATE INDEX mdm_command_push_failed ON mdm_command (push_failed_at)
        WHERE push_failed_at IS NOT NULL;
    CREATE INDEX mdm_command_device ON mdm_command (device_id, request_type, requested_at);
    CREATE INDEX mdm_command_open ON mdm_command (requested_at)
        WHERE state IN ('requested', 'uncertain', 'queued', 'not_now');
    ALTER TABLE device ADD COLUMN mdm_checked_out_at INTEGER;
    CREATE TABLE upgrade_done (
        name     TEXT    PRIMARY KEY,
        done_at  INTEGER NOT NULL
    );
    INSERT INTO mdm_command (uuid, device_id, udid, request_type, state, detail, requested_at, updated_at)
    SELECT r.command_uuid, r.device_id, r.udid, COALESCE(r.request_type, ''),
           CASE
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'acknowledged') THEN 'acknowledged'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'error') THEN 'error'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'command_format_error') THEN 'format_error'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'expired') THEN 'expired'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'send_failed') THEN 'not_queued'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid AND l.kind = 'not_now') THEN 'not_now'
             WHEN EXISTS (SELECT 1 FROM mdm_activity l WHERE l.command_uuid = r.command_uuid
                           AND l.kind IN ('sent', 'retry', 'pushed', 'push_failed')) THEN 'queued'
             ELSE 'requested'
           END,
           NULL, r.at, r.at
      FROM mdm_activity r
     WHERE r.kind = 'requested' AND r.command_uuid IS NOT NULL
    ON CONFLICT (uuid) DO NOTHING;",
    // v24: who runs each background job's passes, until when. With several servers on
    // one database (PostgreSQL replicas) one of them holds a job; another takes it over
    // once the holder stops renewing.
    "CREATE TABLE job_lease (
        job     TEXT    PRIMARY KEY,
        holder  TEXT    NOT NULL,
        until   INTEGER NOT NULL
    );",
    // v25: the server's keys sealed under a key-encryption key, for servers sharing a
    // database (on PostgreSQL). A lone SQLite server keeps its keys in files.
    "CREATE TABLE server_key (
        name        TEXT    PRIMARY KEY,
        sealed      BLOB    NOT NULL,
        created_at  INTEGER NOT NULL
    );",
    // v26: every badge tapped at a cart and what the cart answered (granted or refused,
    // and why), so IT can see why a clinician walked away without a phone.
    "CREATE TABLE cart_tap (
        id           INTEGER PRIMARY KEY,
        at           INTEGER NOT NULL,
        launchpad_id TEXT    NOT NULL,
        username     TEXT,
        beep         INTEGER NOT NULL,
        reason       TEXT    NOT NULL,
        device_id    TEXT,
        port         INTEGER,
        detail       TEXT    NOT NULL
    );
    CREATE INDEX cart_tap_at ON cart_tap (at);
    CREATE INDEX cart_tap_launchpad ON cart_tap (launchpad_id, id);",
    // v27: an enrollment token an admin made to re-enroll phones: a phone enrolling with
    // it replaces the record holding its UDID and serial number (a phone erased without
    // an MDM to vouch for it).
    "ALTER TABLE enrollment_token ADD COLUMN replaces_existing INTEGER NOT NULL DEFAULT 0;",
];

/// Versions after which the database is vacuumed, because they dropped secrets that
/// free pages would otherwise keep.
pub const VACUUM_AFTER: &[i64] = &[22];

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Reads `PRAGMA user_version`.
pub fn current(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies migrations `from..to` inside `tx`.
pub fn apply(tx: &Transaction<'_>, from: i64, to: i64) -> rusqlite::Result<()> {
    for v in from..to {
        let Some(sql) = usize::try_from(v).ok().and_then(|i| MIGRATIONS.get(i)) else {
            break;
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v + 1)?;
    }
    Ok(())
}
