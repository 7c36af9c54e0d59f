-- schema version 27
-- index attempt_window_start
CREATE INDEX attempt_window_start ON attempt_window (window_start);
-- index audit_log_target
CREATE INDEX audit_log_target ON audit_log (target_kind, target_id);
-- index automation_rule_order
CREATE INDEX automation_rule_order ON automation_rule (trigger_kind, position);
-- index badge_user
CREATE INDEX badge_user ON badge (username);
-- index cart_tap_at
CREATE INDEX cart_tap_at ON cart_tap (at);
-- index cart_tap_launchpad
CREATE INDEX cart_tap_launchpad ON cart_tap (launchpad_id, id);
-- index command_device_state
CREATE INDEX command_device_state ON command (device_id, state);
-- index command_grant
CREATE INDEX command_grant ON command (grant_id) WHERE grant_id IS NOT NULL;
-- index command_request
CREATE INDEX command_request ON command (device_id, request_id) WHERE request_id IS NOT NULL;
-- index command_settled
CREATE INDEX command_settled ON command (updated_at) WHERE state NOT IN ('pending', 'delivered');
-- index device_event_received
CREATE INDEX device_event_received ON device_event (received_at);
-- index device_held_by_grant
CREATE INDEX device_held_by_grant ON device (held_by_grant) WHERE held_by_grant IS NOT NULL;
-- index device_launchpad_idx
CREATE INDEX device_launchpad_idx ON device (last_launchpad);
-- index device_mdm_udid
CREATE UNIQUE INDEX device_mdm_udid ON device (mdm_udid) WHERE mdm_udid IS NOT NULL;
-- index device_udid
CREATE INDEX device_udid ON device (udid) WHERE udid IS NOT NULL;
-- index device_user_idx
CREATE INDEX device_user_idx ON device (device_user);
-- index email_outbox_due
CREATE INDEX email_outbox_due ON email_outbox (state, next_attempt_at);
-- index email_outbox_settled
CREATE INDEX email_outbox_settled ON email_outbox (created_at) WHERE state <> 'pending';
-- index launchpad_credential
CREATE UNIQUE INDEX launchpad_credential ON launchpad (credential_hash);
-- index mdm_activity_at
CREATE INDEX mdm_activity_at ON mdm_activity (at);
-- index mdm_activity_command
CREATE INDEX mdm_activity_command ON mdm_activity (command_uuid);
-- index mdm_activity_kind_at
CREATE INDEX mdm_activity_kind_at ON mdm_activity (kind, at);
-- index mdm_activity_udid
CREATE INDEX mdm_activity_udid ON mdm_activity (udid, id);
-- index mdm_command_device
CREATE INDEX mdm_command_device ON mdm_command (device_id, request_type, requested_at);
-- index mdm_command_open
CREATE INDEX mdm_command_open ON mdm_command (requested_at)
        WHERE state IN ('requested', 'uncertain', 'queued', 'not_now');
-- index mdm_command_probe
CREATE INDEX mdm_command_probe ON mdm_command (probe) WHERE probe IS NOT NULL;
-- index mdm_command_push_failed
CREATE INDEX mdm_command_push_failed ON mdm_command (push_failed_at)
        WHERE push_failed_at IS NOT NULL;
-- index offline_entry_badge
CREATE INDEX offline_entry_badge ON offline_entry (badge_hash);
-- index password_failure_age
CREATE INDEX password_failure_age ON password_failure (updated_at);
-- index security_event_at
CREATE INDEX security_event_at ON security_event (at);
-- index security_event_device
CREATE INDEX security_event_device ON security_event (device_id, id)
        WHERE device_id IS NOT NULL;
-- index security_event_kind
CREATE INDEX security_event_kind ON security_event (device_id, kind, at);
-- index webhook_event_age
CREATE INDEX webhook_event_age ON webhook_event (received_at);
-- index workflow_run_device
CREATE INDEX workflow_run_device ON workflow_run (device_id, id);
-- index workflow_run_finished
CREATE INDEX workflow_run_finished ON workflow_run (finished_at) WHERE finished_at IS NOT NULL;
-- index workflow_run_holding
CREATE INDEX workflow_run_holding ON workflow_run (device_id) WHERE holds_device = 1;
-- index workflow_run_state
CREATE INDEX workflow_run_state ON workflow_run (state, id);
-- table api_token
CREATE TABLE api_token (
        id          INTEGER PRIMARY KEY,
        token_hash  BLOB    NOT NULL UNIQUE,
        role        TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'auditor')),
        label       TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    , expires_at INTEGER, last_used_at INTEGER);
-- table app_user
CREATE TABLE app_user (
        username      TEXT    PRIMARY KEY,
        display_name  TEXT    NOT NULL,
        email         TEXT,
        groups_json   TEXT    NOT NULL DEFAULT '[]',
        device_limit  INTEGER NOT NULL DEFAULT 1 CHECK (device_limit >= 0),
        password_hash TEXT,
        created_at    INTEGER NOT NULL
    );
-- table attempt_window
CREATE TABLE attempt_window (
        key          TEXT    PRIMARY KEY,
        window_start INTEGER NOT NULL,
        failures     INTEGER NOT NULL CHECK (failures >= 0)
    );
-- table attribute_def
CREATE TABLE attribute_def (
        target      TEXT    NOT NULL CHECK (target IN ('device', 'launchpad')),
        name        TEXT    NOT NULL,
        value_type  TEXT    NOT NULL CHECK (value_type IN ('string', 'int', 'bool')),
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (target, name)
    );
-- table attribute_value
CREATE TABLE attribute_value (
        target      TEXT    NOT NULL,
        entity_id   TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        value_json  TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (target, entity_id, name),
        FOREIGN KEY (target, name) REFERENCES attribute_def (target, name) ON DELETE CASCADE
    );
-- table audit_log
CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        target_kind TEXT    NOT NULL,
        target_id   TEXT    NOT NULL,
        before_json TEXT,
        after_json  TEXT
    );
-- table automation_rule
CREATE TABLE automation_rule (
        id           TEXT    PRIMARY KEY,
        name_key     TEXT    NOT NULL UNIQUE,
        trigger_kind TEXT    NOT NULL,
        position     INTEGER NOT NULL,
        spec_json    TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
-- table badge
CREATE TABLE badge (
        badge_hash  BLOB    PRIMARY KEY,
        username    TEXT    NOT NULL REFERENCES app_user (username) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL
    , offline_sealed BLOB);
-- table cart_tap
CREATE TABLE cart_tap (
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
-- table command
CREATE TABLE "command" (
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
    , request_id TEXT, grant_id TEXT, grant_user TEXT);
-- table device
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
    , docked INTEGER NOT NULL DEFAULT 0, overdue INTEGER NOT NULL DEFAULT 0, admin_state TEXT
        CHECK (admin_state IS NULL OR admin_state IN ('lost', 'retired')), passcode TEXT, held_by_grant TEXT, located_by_hub INTEGER NOT NULL DEFAULT 0, mdm_udid TEXT, mdm_last_seen INTEGER, mdm_checked_out_at INTEGER);
-- table device_event
CREATE TABLE device_event (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        record      TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
-- table email_outbox
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
-- table enrollment_token
CREATE TABLE enrollment_token (
        token_hash   BLOB    PRIMARY KEY,
        label        TEXT    NOT NULL,
        uses_left    INTEGER,
        expires_at   INTEGER NOT NULL,
        launchpad_id TEXT    REFERENCES launchpad (id) ON DELETE CASCADE,
        department   TEXT,
        created_at   INTEGER NOT NULL
    , revoked_at INTEGER, replaces_existing INTEGER NOT NULL DEFAULT 0);
-- table job_lease
CREATE TABLE job_lease (
        job     TEXT    PRIMARY KEY,
        holder  TEXT    NOT NULL,
        until   INTEGER NOT NULL
    );
-- table launchpad
CREATE TABLE launchpad (
        id          TEXT    PRIMARY KEY,
        name        TEXT    NOT NULL UNIQUE,
        ports       INTEGER NOT NULL CHECK (ports BETWEEN 1 AND 64),
        department  TEXT,
        facility    TEXT,
        manager     TEXT,
        timezone    TEXT,
        created_at  INTEGER NOT NULL
    , credential_hash BLOB, pending_device TEXT, pending_until INTEGER, pending_grant TEXT);
-- table mdm_activity
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
-- table mdm_command
CREATE TABLE mdm_command (
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
-- table mdm_identity
CREATE TABLE mdm_identity (
        udid             TEXT    PRIMARY KEY,
        serial           TEXT,
        authenticated_at INTEGER NOT NULL,
        supersedes       TEXT
    );
-- table mdm_token
CREATE TABLE mdm_token (
        udid          TEXT    PRIMARY KEY,
        sealed_token  BLOB    NOT NULL,
        updated_at    INTEGER NOT NULL
    );
-- table offline_entry
CREATE TABLE offline_entry (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        badge_hash  BLOB    NOT NULL REFERENCES badge (badge_hash) ON DELETE CASCADE,
        iterations  INTEGER NOT NULL,
        sealed      BLOB    NOT NULL,
        PRIMARY KEY (device_id, badge_hash)
    ) WITHOUT ROWID;
-- table offline_list
CREATE TABLE offline_list (
        device_id   TEXT    PRIMARY KEY REFERENCES device (id) ON DELETE CASCADE,
        version     INTEGER NOT NULL,
        digest      BLOB    NOT NULL,
        audit_mark  INTEGER NOT NULL,
        built_at    INTEGER NOT NULL,
        valid_until INTEGER NOT NULL
    );
-- table password_failure
CREATE TABLE password_failure (
        username     TEXT    PRIMARY KEY,
        failures     INTEGER NOT NULL CHECK (failures >= 0),
        locked_until INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
-- table policy
CREATE TABLE policy (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        version     INTEGER NOT NULL,
        body        TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL
    );
-- table readiness
CREATE TABLE readiness (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at  INTEGER NOT NULL
    );
-- table schedule_fired
CREATE TABLE schedule_fired (
        rule_id      TEXT    NOT NULL,
        launchpad_id TEXT    NOT NULL,
        occurrence   INTEGER NOT NULL,
        PRIMARY KEY (rule_id, launchpad_id)
    );
-- table security_event
CREATE TABLE security_event (
        id           INTEGER PRIMARY KEY,
        at           INTEGER NOT NULL,
        device_id    TEXT,
        launchpad_id TEXT,
        kind         TEXT    NOT NULL,
        detail       TEXT    NOT NULL,
        seq          INTEGER
    );
-- table server_key
CREATE TABLE server_key (
        name        TEXT    PRIMARY KEY,
        sealed      BLOB    NOT NULL,
        created_at  INTEGER NOT NULL
    );
-- table transition_outbox
CREATE TABLE transition_outbox (
        device_id   TEXT    NOT NULL REFERENCES device (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        transition  TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
-- table upgrade_done
CREATE TABLE upgrade_done (
        name     TEXT    PRIMARY KEY,
        done_at  INTEGER NOT NULL
    );
-- table webhook_event
CREATE TABLE webhook_event (
        event_id    TEXT    PRIMARY KEY,
        received_at INTEGER NOT NULL
    );
-- table workflow
CREATE TABLE workflow (
        id          TEXT    PRIMARY KEY,
        name_key    TEXT    NOT NULL UNIQUE,
        spec_json   TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
-- table workflow_run
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
    , holds_device INTEGER NOT NULL DEFAULT 0);
-- trigger device_states_insert
CREATE TRIGGER device_states_insert BEFORE INSERT ON device
     WHEN NEW.status NOT IN ('unenrolled', 'checked_in', 'checkout_pending', 'checked_out',
                             'returning', 'blocked')
       OR (NEW.passcode IS NOT NULL
           AND NEW.passcode NOT IN ('present', 'clearing', 'clear_failed', 'absent'))
     BEGIN SELECT RAISE(ABORT, 'device status or passcode state is not one the server knows'); END;
-- trigger device_states_update
CREATE TRIGGER device_states_update BEFORE UPDATE OF status, passcode ON device
     WHEN NEW.status NOT IN ('unenrolled', 'checked_in', 'checkout_pending', 'checked_out',
                             'returning', 'blocked')
       OR (NEW.passcode IS NOT NULL
           AND NEW.passcode NOT IN ('present', 'clearing', 'clear_failed', 'absent'))
     BEGIN SELECT RAISE(ABORT, 'device status or passcode state is not one the server knows'); END;
